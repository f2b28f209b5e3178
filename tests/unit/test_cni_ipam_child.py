"""The exec'd IPAM delegate's lifetime (cni.ipam_child): parent-death signal, own process
group, the whole group killed on timeout. Real processes, no root needed."""

from __future__ import annotations

import io
import json
import os
import signal
import time
from pathlib import Path

import pytest

from cni.errors import CniCode, CniError
from cni.ipam import ExecIpam
from cni.ipam_child import run_child
from cni.netconf import NetConf
from cni.protocol import CmdArgs, Command


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state not in ("Z", "X")


def wait_dead(pid: int, deadline: float = 10.0) -> bool:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if not alive(pid):
            return True
        time.sleep(0.02)
    return False


def test_child_leads_its_own_process_group() -> None:
    status, out, _ = run_child(["/bin/sh", "-c", "cut -d' ' -f5 /proc/$$/stat; echo $$"], b"",
                               {"PATH": "/usr/bin:/bin"}, timeout=30)
    assert status == 0
    pgid, pid = out.decode().split()  # field 5 of /proc/<pid>/stat: the process group
    assert pgid == pid and int(pgid) != os.getpgrp()


def test_pdeathsig_is_sigkill() -> None:
    # the child reads its own parent-death signal with prctl(PR_GET_PDEATHSIG) through python
    code = ("import ctypes, signal; v = ctypes.c_int(); "
            "ctypes.CDLL(None).prctl(2, ctypes.byref(v), 0, 0, 0); print(v.value)")
    import sys

    status, out, err = run_child([sys.executable, "-c", code], b"", dict(os.environ), timeout=30)
    assert status == 0, err
    assert int(out) == signal.SIGKILL


def test_timeout_kills_the_whole_group(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    plugin = tmp_path / "hang-ipam"
    plugin.write_text(f"#!/bin/sh\nsleep 300 &\necho $! > {pids}\nsleep 300\n")
    plugin.chmod(0o755)
    raw = json.dumps({"cniVersion": "1.0.0", "name": "n", "type": "sriov",
                      "ipam": {"type": "hang-ipam"}}).encode()
    args = CmdArgs(command=Command.ADD, container_id="c1", ifname="net1", netns="/x",
                   path=(str(tmp_path),))
    runner = ExecIpam([str(tmp_path)], {"CNI_COMMAND": "ADD", "PATH": "/usr/bin:/bin"},
                      stderr=io.StringIO(), timeout=1)
    with pytest.raises(CniError) as ei:
        runner.add(NetConf.parse(raw, args), args)
    assert ei.value.code == CniCode.TRY_AGAIN_LATER
    grandchild = int(pids.read_text())
    assert wait_dead(grandchild), "the delegate's background helper survived the timeout"
