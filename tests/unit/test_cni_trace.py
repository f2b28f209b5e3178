"""Per-request step timings (SRIOV_CNI_TRACE) and the shim's start-up import budget."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from cni import skel, trace
from cni.main import Runtime

REPO = Path(__file__).resolve().parents[2]


class _Netlink:
    def link(self, name: str) -> str:
        return name


def test_traced_request_logs_one_line_with_summed_steps(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="cni.trace")
    with trace.request("ADD", True):
        nl = trace.maybe_traced(_Netlink(), "netlink")
        assert nl.link("a") == "a" and nl.link("b") == "b"
        with trace.step("parse"):
            pass
    [line] = [r.getMessage() for r in caplog.records if r.name == "cni.trace"]
    assert line.startswith("trace ADD ")
    assert "netlink.link " in line and "/2" in line and "parse " in line


def test_untraced_request_is_silent_and_unwrapped(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="cni.trace")
    handle = _Netlink()
    with trace.request("DEL", False):
        assert trace.maybe_traced(handle, "netlink") is handle
        with trace.step("parse"):
            pass
    assert not [r for r in caplog.records if r.name == "cni.trace"]


def test_env_switch() -> None:
    assert trace.enabled({"SRIOV_CNI_TRACE": "1"}) and trace.enabled({"SRIOV_CNI_TRACE": "true"})


def test_dispatch_trace_goes_to_the_request_stderr(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SRIOV_CNI_TRACE", "1")
    env = {
        "CNI_COMMAND": "DEL",
        "CNI_CONTAINERID": "c1",
        "CNI_NETNS": "/run/netns/st-none",
        "CNI_IFNAME": "net1",
        "CNI_PATH": "/usr/lib/cni",
    }
    conf = {"cniVersion": "1.0.0", "name": "st-net", "type": "sriov",
            "ipam": {"type": "host-local", "dataDir": str(tmp_path / "ipam"),
                     "ranges": [[{"subnet": "10.7.0.0/24"}]]}}
    out, err = io.StringIO(), io.StringIO()
    runtime = Runtime(sysfs_root=tmp_path, state_dir=tmp_path / "state")
    status = skel.dispatch(env, json.dumps(conf).encode(), out, err, runtime.plugin(env, err))
    assert status == 0, out.getvalue()
    assert "cni.trace: trace DEL" in err.getvalue()
    assert "ipam.delete" in err.getvalue()


def test_shim_agent_path_imports_no_os_module() -> None:
    # -IS as the installed launcher runs it: os alone costs ~1-1.5 ms of every pod attach
    code = f"import sys; sys.path.insert(0, {str(REPO)!r}); import cni.shim; print(*sys.modules)"
    out = subprocess.run([sys.executable, "-IS", "-c", code], capture_output=True, text=True,
                         check=True)
    loaded = set(out.stdout.split())
    assert "os" not in loaded and "__future__" not in loaded and "socket" not in loaded
