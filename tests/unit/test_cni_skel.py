"""skel.dispatch: env matrix -> stdout JSON / exit status for every verb and cniVersion."""

from __future__ import annotations

import io
import json
import os

import pytest

from cni import skel
from cni.errors import CniCode, CniError
from cni.netconf import NetConf
from cni.protocol import SUPPORTED_VERSIONS, CmdArgs, IPConfig, Result
from sriov.errors import DeviceNotFoundError, NetlinkOpError, VfBusyError, VfSettingError


class Handlers:
    def __init__(self, fail: BaseException | None = None) -> None:
        self.fail = fail
        self.calls: list[str] = []

    def _do(self, name: str) -> None:
        self.calls.append(name)
        if self.fail:
            raise self.fail

    def add(self, args: CmdArgs, conf: NetConf) -> Result:
        self._do("add")
        return Result(ips=(IPConfig(address="10.0.0.2/24", gateway="10.0.0.1"),))

    def delete(self, args: CmdArgs, conf: NetConf) -> None:
        self._do("delete")

    def check(self, args: CmdArgs, conf: NetConf) -> None:
        self._do("check")

    def gc(self, args: CmdArgs, conf: NetConf) -> None:
        self._do("gc")

    def status(self, args: CmdArgs, conf: NetConf) -> None:
        self._do("status")


def run(
    cmd: str,
    version: str = "1.1.0",
    handlers: Handlers | None = None,
    stdin: bytes | None = None,
    **env_over: str,
) -> tuple[int, str, str, Handlers]:
    h = handlers or Handlers()
    env = {
        "CNI_COMMAND": cmd,
        "CNI_CONTAINERID": "c1",
        "CNI_NETNS": "/run/netns/st-none",
        "CNI_IFNAME": "net1",
        "CNI_PATH": "/usr/lib/cni",
        **env_over,
    }
    body = (
        stdin
        if stdin is not None
        else json.dumps({"cniVersion": version, "name": "n", "type": "sriov"}).encode()
    )
    out, err = io.StringIO(), io.StringIO()
    status = skel.dispatch(env, body, out, err, h)
    return status, out.getvalue(), err.getvalue(), h


def one_json(text: str) -> dict:
    obj, end = json.JSONDecoder().raw_decode(text)
    assert text[end:].strip() == "", "stdout holds more than one JSON document"
    return obj


MIN = {"CHECK": (0, 4, 0), "GC": (1, 1, 0), "STATUS": (1, 1, 0)}


@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
@pytest.mark.parametrize("cmd", ["ADD", "DEL", "CHECK", "GC", "STATUS", "VERSION"])
def test_every_verb_and_version(cmd: str, version: str) -> None:
    status, out, _, h = run(cmd, version)
    allowed = tuple(int(x) for x in version.split(".")) >= MIN.get(cmd, (0, 0, 0))
    if cmd == "VERSION":
        assert status == 0 and one_json(out)["supportedVersions"] == list(SUPPORTED_VERSIONS)
        assert one_json(out)["cniVersion"] == version
    elif not allowed:
        assert status == 1 and one_json(out)["code"] == CniCode.INCOMPATIBLE_VERSION
        assert one_json(out)["cniVersion"] == version
        assert h.calls == []
    elif cmd == "ADD":
        assert status == 0 and one_json(out)["cniVersion"] == version
        result = one_json(out)
        assert (
            ("ip4" in result)
            if version < "0.3.0"
            else (result["ips"][0]["address"] == "10.0.0.2/24")
        )
    else:
        assert status == 0 and out == ""
        assert h.calls == [{"DEL": "delete"}.get(cmd, cmd.lower())]


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (CniError(CniCode.IPAM, "ipam failed"), 104),
        (VfBusyError("0000:01:00.2", "locked"), 11),
        (VfSettingError("link_state", "pf0 vf 1", 95), 103),
        (NetlinkOpError("move", "eth1", 17), 102),
        (DeviceNotFoundError("VF", "0000:01:00.9"), 100),
        (RuntimeError("boom"), 999),
    ],
)
def test_handler_errors_become_one_error_json(exc: BaseException, code: int) -> None:
    status, out, err, _ = run("ADD", handlers=Handlers(fail=exc))
    doc = one_json(out)
    assert status == 1 and doc["code"] == code and doc["msg"]
    assert "Traceback" not in out
    if code == 103:
        assert "link_state" in doc["msg"]
    if code == 999:
        assert "RuntimeError: boom" in doc["details"] and "Traceback" in err


@pytest.mark.parametrize(
    ("stdin", "code"),
    [(b"{bad", 6), (b'{"cniVersion":"1.0.0"}', 7), (b'{"cniVersion":"7.0.0","name":"n"}', 1)],
)
def test_bad_config(stdin: bytes, code: int) -> None:
    status, out, _, h = run("ADD", stdin=stdin)
    assert status == 1 and one_json(out)["code"] == code and h.calls == []


def test_env_error_and_version_without_stdin() -> None:
    status, out, _, _ = run("ADD", CNI_IFNAME="bad/name")
    assert status == 1 and one_json(out)["code"] == 4 and "CNI_IFNAME" in one_json(out)["msg"]
    status, out, _, _ = run("VERSION", stdin=b"")
    assert status == 0 and one_json(out)["cniVersion"] == "1.1.0"


def test_refuses_own_netns_unless_overridden() -> None:
    own = "/proc/self/ns/net"
    status, out, _, h = run("ADD", CNI_NETNS=own)
    assert status == 1 and one_json(out)["code"] == CniCode.INVALID_NETNS and h.calls == []
    status, out, _, h = run("ADD", CNI_NETNS=own, CNI_NETNS_OVERRIDE="1")
    assert status == 0 and h.calls == ["add"]


def test_logs_carry_labels_and_netconf_not_logged_at_info() -> None:
    body = json.dumps({"cniVersion": "1.0.0", "name": "n", "secret": "hunter2"}).encode()
    _, _, err, _ = run("DEL", stdin=body)
    assert "cid=c1" in err and "if=net1" in err
    assert "hunter2" not in err


def test_log_file_gets_records(tmp_path) -> None:
    logfile = tmp_path / "cni.log"
    body = json.dumps(
        {"cniVersion": "1.0.0", "name": "n", "logLevel": "debug", "logFile": str(logfile)}
    )
    run("DEL", stdin=body.encode())
    assert "DEL done" in logfile.read_text()


def test_timeout_is_try_again() -> None:
    class Slow(Handlers):
        def add(self, args: CmdArgs, conf: NetConf) -> Result:
            import select

            select.select([], [], [], 5)  # interrupted by the alarm
            raise AssertionError("not reached")

    out = io.StringIO()
    env = {
        "CNI_COMMAND": "ADD",
        "CNI_CONTAINERID": "c1",
        "CNI_NETNS": "/x",
        "CNI_IFNAME": "net1",
        "CNI_PATH": "/usr/lib/cni",
    }
    status = skel.dispatch(
        env, b'{"cniVersion":"1.0.0","name":"n"}', out, io.StringIO(), Slow(), timeout=0.2
    )
    assert status == 1 and one_json(out.getvalue())["code"] == CniCode.TRY_AGAIN_LATER
    assert os.environ.get("CNI_COMMAND") is None
