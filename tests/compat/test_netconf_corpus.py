"""sriov-cni NetConfs in the shapes real clusters send, each with the VF settings it means.

Every ``corpus/netconf/<case>/`` holds a ``netconf.json`` (as sriov-network-operator
renders a SriovNetwork, with Multus' ``deviceID``, or Go-cased as sriov-cni's decoder
accepts it) and an ``expect.json``: ``deviceID``, ``settings`` (the PF-side VF settings:
:class:`sriov.types.VfSettings` fields, ``None`` = left untouched), ``logLevel``,
``logFile``, ``warnings`` (substrings; ``[]``: none), optional ``cniArgs``, or ``error``
(``code`` and a substring of ``msg``) for what sriov-cni rejects too.

Each case also runs through the real CNI entry point (``cni.main.run``) for VERSION-free
parsing errors: the one error JSON on stdout with the same code.
"""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path
from typing import Any

import pytest

from cni import skel
from cni.errors import CniError
from cni.netconf import NetConf
from cni.protocol import CmdArgs, Result

CORPUS = Path(__file__).parent / "corpus" / "netconf"
CASES = sorted(p.name for p in CORPUS.iterdir() if p.is_dir())


def _env(cni_args: str = "") -> dict[str, str]:
    return {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c0ffee", "CNI_NETNS": "/var/run/netns/x",
            "CNI_IFNAME": "net1", "CNI_PATH": "/opt/cni/bin", "CNI_ARGS": cni_args}


def _case(name: str) -> tuple[bytes, dict[str, Any]]:
    return ((CORPUS / name / "netconf.json").read_bytes(),
            json.loads((CORPUS / name / "expect.json").read_text()))


def test_the_corpus_is_not_empty() -> None:
    assert len(CASES) >= 10


@pytest.mark.parametrize("case", CASES)
def test_netconf_case(case: str) -> None:
    raw, expect = _case(case)
    args = CmdArgs.from_env(_env(expect.get("cniArgs", "")))
    if "error" in expect:
        with pytest.raises(CniError) as info:
            NetConf.parse(raw, args)
        assert info.value.code == expect["error"]["code"]
        assert expect["error"]["msg"] in f"{info.value.msg} {info.value.details}"
        return
    conf = NetConf.parse(raw, args)
    assert conf.device_id == expect["deviceID"]
    settings = {k: (v.value if hasattr(v, "value") else v)
                for k, v in dataclasses.asdict(conf.vf_settings()).items()}
    for key, value in expect["settings"].items():
        assert settings[key] == value, (key, settings)
    assert conf.log_level == expect.get("logLevel", "info")
    assert conf.log_file == expect.get("logFile", "")
    if "ipamType" in expect:
        assert conf.ipam_type == expect["ipamType"]
    if "extra" in expect:
        assert dict(conf.extra) == expect["extra"]
    if not expect["warnings"]:
        assert conf.warnings == (), conf.warnings
    for text in expect["warnings"]:
        assert any(text in w for w in conf.warnings), (text, conf.warnings)


@pytest.mark.parametrize("case", [c for c in CASES if "error" in _case(c)[1]])
def test_rejected_netconf_is_one_error_json_with_the_same_code(case: str) -> None:
    raw, expect = _case(case)
    out, err = io.StringIO(), io.StringIO()
    status = skel.dispatch(_env(), raw, out, err, handlers=None)  # type: ignore[arg-type]
    assert status == 1
    reply = json.loads(out.getvalue())
    assert reply["code"] == expect["error"]["code"]
    assert "Traceback" not in err.getvalue()


class _Recording:
    """The verb handlers seam of :func:`cni.skel.dispatch`: records what ADD/CHECK were given."""

    def __init__(self) -> None:
        self.confs: list[NetConf] = []

    def add(self, args: CmdArgs, conf: NetConf) -> Result:
        self.confs.append(conf)
        return Result(cni_version=conf.cni_version)

    def check(self, args: CmdArgs, conf: NetConf) -> None:
        self.confs.append(conf)


def test_lenient_values_are_logged_and_mean_the_same_in_add_and_check() -> None:
    raw, _ = _case("lenient-values")
    handlers = _Recording()
    for command in ("ADD", "CHECK"):
        out, err = io.StringIO(), io.StringIO()
        env = {**_env(), "CNI_COMMAND": command, "CNI_NETNS_OVERRIDE": "1"}
        assert skel.dispatch(env, raw, out, err, handlers) == 0, out.getvalue()  # type: ignore[arg-type]
        assert "netconf: spoofchk: 'ON' is neither 'on' nor 'off'" in err.getvalue()
        assert "netconf: logLevel: 'verbose'" in err.getvalue()
    add, check = handlers.confs
    assert add.vf_settings() == check.vf_settings()
    assert add.vf_settings().spoofchk is False and add.vf_settings().trust is False
