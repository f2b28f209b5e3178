"""An exec'd IPAM delegate never outlives its request (issue 11 #9).

The agent is a real process, killed with SIGKILL while its IPAM child (a delegate script that
waits for a go signal, then execs the reference host-local) runs an ADD. The child must die with
the agent; and a lease that a process outside our control allocates late is released by GC.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.integration.test_cni_fallback_support import (  # noqa: F401 (fixtures)
    CNI_BIN,
    VENV_PYTHON,
    Cni,
    Lan,
    _connectable,
    exec_plugin,
    lan,
    link_json,
    ns_path,
    sh,
    wait_for,
)

pytestmark = pytest.mark.root

DELEGATE = """#!/bin/sh
# a slow IPAM delegate: on ADD, note its pid and wait for the test's go signal
if [ "$CNI_COMMAND" = ADD ]; then
    echo $$ >> {pids}
    while [ ! -e {go} ]; do sleep 0.05; done
fi
exec {host_local}
"""


def alive(pid: int) -> bool:
    """Running (a zombie waiting for a reaper counts as dead)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


@pytest.fixture
def slow_ipam(tmp_path: Path) -> Iterator[tuple[Path, Path, Path]]:
    """(CNI_PATH dir holding the slow ``host-local``, its pid file, its go file)."""
    bin_dir, pids, go = tmp_path / "ipam-bin", tmp_path / "ipam.pids", tmp_path / "ipam.go"
    bin_dir.mkdir()
    script = bin_dir / "host-local"
    script.write_text(DELEGATE.format(pids=pids, go=go, host_local=CNI_BIN / "host-local"))
    script.chmod(0o755)
    try:
        yield bin_dir, pids, go
    finally:
        go.touch()  # release a delegate that survived (before the fix) so it ends
        if pids.exists():
            for pid in map(int, pids.read_text().split()):
                if alive(pid):
                    os.kill(pid, signal.SIGKILL)


def test_agent_killed_mid_add_takes_its_ipam_child_along(
    tmp_path: Path, lan: Lan, netns: str, slow_ipam: tuple[Path, Path, Path]  # noqa: F811
) -> None:
    bin_dir, pids, go = slow_ipam
    cni = Cni(tmp_path, lan.master)
    conf = cni.conf()
    sock = tmp_path / "run" / "agent.sock"
    extra = {"CNI_PATH": f"{bin_dir}:{CNI_BIN}", "SRIOV_CNI_EXEC_IPAM": "1",
             "SRIOV_CNI_AGENT_SOCKET": str(sock)}
    log = (tmp_path / "agent.log").open("wb")
    agent = subprocess.Popen(
        [str(VENV_PYTHON), "-m", "cni.agent", "--socket", str(sock), "--state-dir",
         str(cni.state_dir)], stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
        env={**os.environ, "SRIOV_CNI_EXEC_IPAM": "1"})
    try:
        wait_for(lambda: agent.poll() is not None or _connectable(sock), "the agent socket")
        shim = tmp_path / "bin" / "sriov"
        sh(str(REPO / "hack/install-cni"), str(shim.parent))
        env = {**cni.env("ADD", ns_path(netns)), **extra}
        replies: list[object] = []
        adding = threading.Thread(target=lambda: replies.append(exec_plugin(shim, env, conf)))
        adding.start()
        wait_for(lambda: pids.exists() and pids.read_text().strip(), "the IPAM delegate to start")
        [child] = map(int, pids.read_text().split())
        os.kill(agent.pid, signal.SIGKILL)
        agent.wait(30)
        adding.join(60)
        add = replies[0]
        assert add.rc == 1 and add.out["code"] == 11, add  # type: ignore[attr-defined]
        # the child must die with the agent, before it can allocate anything
        wait_for(lambda: not alive(child), "the IPAM child to die with the agent", timeout=20)
    finally:
        if agent.poll() is None:
            os.kill(agent.pid, signal.SIGKILL)
            agent.wait(30)
        log.close()
    # the runtime's DEL (no agent now: the shim runs in-process), then the late go signal
    deleted = exec_plugin(shim, {**env, "CNI_COMMAND": "DEL"}, conf)
    assert deleted.rc == 0, deleted
    go.touch()
    assert link_json(netns, "net1") is None
    assert cni.records() == [] and cni.leases() == []


def test_gc_releases_a_lease_allocated_after_the_del(tmp_path: Path, lan: Lan,  # noqa: F811
                                                    netns: str) -> None:
    """A lease taken by a process we could not stop (e.g. a grandchild of the delegate) after
    the runtime's DEL: the next GC of the network releases it, also when the exec'd host-local
    is too old to GC by itself (Debian's 1.1.1)."""
    cni = Cni(tmp_path, lan.master)
    conf = cni.conf("1.0.0")  # Debian's host-local knows no 1.1.0: GC is done for it
    env = {**cni.env("ADD", ns_path(netns), cid="st-late"), "SRIOV_CNI_EXEC_IPAM": "1",
           "SRIOV_CNI_AGENT_SOCKET": str(tmp_path / "none.sock")}
    late = subprocess.run([str(CNI_BIN / "host-local")], input=json.dumps(conf).encode(), env=env,
                          capture_output=True, check=False)
    assert late.returncode == 0, late.stdout
    assert len(cni.leases()) == 1
    kept = cni.call("ADD", conf, ns_path(netns), cid="st-kept",
                    extra={"SRIOV_CNI_EXEC_IPAM": "1"})
    assert kept.rc == 0, kept.err
    gc = cni.call("GC", {**conf, "cniVersion": "1.1.0", "cni.dev/valid-attachments": [
        {"containerID": "st-kept", "ifname": "net1"}]}, "", extra={"SRIOV_CNI_EXEC_IPAM": "1"})
    assert gc.rc == 0, gc.out
    kept_ip = kept.out["ips"][0]["address"].split("/")[0]  # type: ignore[index]
    assert cni.leases() == [kept_ip]
    cni.ok("DEL", conf, ns_path(netns), cid="st-kept")
    assert cni.leases() == []
