"""The agent's deferred DEL (docs/cni.md "Deferred DEL"), through the real shim.

A VF-mode or fallback DEL is answered once IPAM is released and the record is marked
``delPending``; the slow kernel work - the VF's move home and restore, the fallback link's
deletion - runs right after the reply, still under the attachment's (and the VF's) locks, with
the pod netns held open by an fd of the agent. What a user must be able to rely on:

* the answer comes before the kernel work (the runtime does not wait for a netns move or a
  link deletion's RCU grace period), and the work then happens: the VF back with the same host
  name, MAC, MTU and PF-side settings as before ADD, the fallback link gone;
* whatever comes next for that VF (an ADD for a new pod) waits for the restore, and succeeds;
* an agent killed between the answer and the tail loses nothing: the next agent start
  finishes it (pod netns deleted by the runtime meanwhile, or not), and so do an ADD of the VF
  by a standalone plugin and a GC;
* no netns is kept alive once the tail is done;
* ``--sync-del`` answers only after the restore.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import require_root
from tests.reliability.conftest import Node, cid, del_netns, links, new_netns, records_left, settle
from tests.reliability.del_harness import Rig, maybe_agent, wait_until

pytestmark = pytest.mark.root


def _record(node: Node, container: str) -> dict | None:
    path = node.state_dir / f"{container}-net1"
    return json.loads(path.read_bytes()) if path.exists() else None


def _netns() -> str:
    return f"/var/run/netns/{new_netns()}"


def _stopped(pid: int) -> bool:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T"


def test_an_add_right_after_del_waits_for_the_restore_and_gets_the_vf(node: Node) -> None:
    """Pod A's DEL, then at once pod B's ADD of the same VF: B waits on the VF lock the tail
    holds, then gets the VF with its host settings (not A's MAC)."""
    require_root()
    rig = Rig(node, "vf", "agent", node.tmp / "agent.sock")
    vf_before = node.vf_view(0)
    pod_a, pod_b = _netns(), _netns()
    a, b = cid(), cid()
    try:
        with maybe_agent(node, "agent", rig.sock):
            conf = rig.conf(mac="02:00:00:0a:0b:0c")
            assert rig.call("ADD", a, pod_a, conf=conf).rc == 0
            assert rig.call("DEL", a, pod_a, conf=conf).rc == 0
            del_netns(Path(pod_a).name)  # the runtime deletes the netns right away
            added = rig.call("ADD", b, pod_b)
            assert added.rc == 0, added.stdout
            assert added.out and added.out["interfaces"][-1]["mac"] == vf_before["mac"]
            assert rig.call("DEL", b, pod_b).rc == 0
            assert node.vf_view(0) == vf_before
            assert records_left(node.state_dir) == [] and node.leases() == []
    finally:
        del_netns(Path(pod_a).name)
        del_netns(Path(pod_b).name)


@pytest.mark.parametrize("netns_deleted", [True, False], ids=["netns-deleted", "netns-kept"])
def test_agent_killed_before_the_restore_the_next_start_finishes_it(
    node: Node, netns_deleted: bool
) -> None:
    """SIGKILL of the agent at the tail's first step (after the answer). With the pod netns
    deleted by the runtime the VF comes home by itself (kernel) under its pod name; kept, it
    stays in the pod. Either way the next agent start restores it and drops the record."""
    require_root()
    rig = Rig(node, "vf", "agent", node.tmp / "agent.sock")
    vf_before = node.vf_view(0)
    pod = _netns()
    c = cid()
    try:
        with maybe_agent(node, "agent", rig.sock, fault="deferred-del:kill") as agent:
            assert agent is not None
            assert rig.call("ADD", c, pod).rc == 0
            assert rig.call("DEL", c, pod).rc == 0  # answered, then the agent dies
            agent.wait(30)
            assert agent.returncode == -signal.SIGKILL
        record = _record(node, c)
        assert record is not None and record["delPending"] is True
        if netns_deleted:
            del_netns(Path(pod).name)
        with maybe_agent(node, "agent", rig.sock):
            deadline = time.monotonic() + 30
            while _record(node, c) is not None and time.monotonic() < deadline:
                time.sleep(0.05)  # polling to a deadline: the start-up finishes it in background
            assert node.vf_view(0) == vf_before
            assert records_left(node.state_dir) == [] and node.leases() == []
        if not netns_deleted:
            assert links(Path(pod).name) == {"lo"}
    finally:
        del_netns(Path(pod).name)


def test_a_standalone_add_of_the_vf_finishes_an_answered_del(node: Node) -> None:
    """The agent is killed after answering DEL and does not come back; the pod netns still
    exists. A standalone plugin's ADD of the VF for another pod takes the VF over (the answered
    DEL makes the old owner stale even with its netns alive) instead of failing with 'busy'."""
    require_root()
    rig = Rig(node, "vf", "agent", node.tmp / "agent.sock")
    alone = Rig(node, "vf", "standalone", node.tmp / "agent.sock")
    vf_before = node.vf_view(0)
    pod_a, pod_b = _netns(), _netns()
    a, b = cid(), cid()
    try:
        with maybe_agent(node, "agent", rig.sock, fault="deferred-del:kill") as agent:
            assert agent is not None
            assert rig.call("ADD", a, pod_a).rc == 0
            assert rig.call("DEL", a, pod_a).rc == 0
            agent.wait(30)
        added = alone.call("ADD", b, pod_b)
        assert added.rc == 0, added.stdout
        assert links(Path(pod_a).name) == {"lo"}
        assert _record(node, a) is None  # the answered DEL's record is gone, not 'released'
        assert alone.call("DEL", b, pod_b).rc == 0
        assert node.vf_view(0) == vf_before
        # the killed agent's empty attachment lock file stays until an agent start or a GC
        # sweeps it (cni.state.StateStore.sweep_attachment_locks)
        left = [f for f in records_left(node.state_dir) if not f.startswith("attach_lock/")]
        assert left == [] and node.leases() == []
    finally:
        del_netns(Path(pod_a).name)
        del_netns(Path(pod_b).name)


def test_sync_del_answers_after_the_restore(node: Node, pod: str) -> None:
    """``sriov-cni-agent --sync-del``: when DEL answers, the VF is already home (no settle)."""
    require_root()
    sock = node.tmp / "sync.sock"
    rig = Rig(node, "vf", "agent", sock)
    vf_before = node.vf_view(0)
    c = cid()
    agent = subprocess.Popen(
        [str(Path(__file__).resolve().parents[2] / ".venv/bin/sriov-cni-agent"), "--socket",
         str(sock), "--state-dir", str(node.state_dir), "--sysfs-root", str(node.root),
         "--workers", "1", "--sync-del", "--log-level", "warning"],
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
             "SRIOV_CNI_FAULT": "deferred-del:kill"},  # a tail would kill it: none may run
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until("the agent listens", sock.exists)
        assert rig.call("ADD", c, pod).rc == 0
        assert rig.call("DEL", c, pod).rc == 0
        assert links(Path(pod).name) == {"lo"}  # home before the answer
        assert _record(node, c) is None
        assert agent.poll() is None  # no tail ran
        settle(node.state_dir)
        assert node.vf_view(0) == vf_before
    finally:
        agent.terminate()
        agent.wait(10)
        sock.unlink(missing_ok=True)


def _holds_netns(pid: int, netns: str) -> bool:
    """Whether process ``pid`` has an fd open on the namespace ``netns`` names."""
    target = os.stat(netns)
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            st = os.stat(fd)  # follows the magic link to the open file itself
        except OSError:
            continue  # closed meanwhile
        if (st.st_dev, st.st_ino) == (target.st_dev, target.st_ino):
            return True
    return False


@pytest.mark.parametrize("mode", ["vf", "fallback"])
def test_del_answers_before_the_tail_which_then_completes(node: Node, pod: str, mode: str
                                                          ) -> None:
    """The tail is stopped (SIGSTOP at its first step) to look at the moment after the answer:
    DEL returned 0, IPAM is released, the record says delPending, the VF or macvlan is still in
    the pod netns, which the agent holds open; once it runs on, the VF is back exactly as before
    (the link gone), nothing is left, and the agent no longer holds the pod netns."""
    require_root()
    rig = Rig(node, mode, "agent", node.tmp / "agent.sock")
    vf_before = node.vf_view(0) if mode == "vf" else None
    c = cid()
    with maybe_agent(node, "agent", rig.sock, fault="deferred-del:stop") as agent:
        assert agent is not None
        assert rig.call("ADD", c, pod).rc == 0
        reply = rig.call("DEL", c, pod)
        assert reply.rc == 0, reply.stdout
        wait_until("the DEL tail reaches its first step", lambda: _stopped(agent.pid))
        record = _record(node, c)
        assert record is not None and record["delPending"] is True
        assert node.leases() == []  # released before the answer
        assert "net1" in links(Path(pod).name)  # not home / not deleted yet
        assert _holds_netns(agent.pid, pod)  # the tail's pin
        os.kill(agent.pid, signal.SIGCONT)
        settle(node.state_dir)
        if vf_before is not None:
            assert node.vf_view(0) == vf_before
        assert links(Path(pod).name) == {"lo"}
        assert records_left(node.state_dir) == []
        assert not _holds_netns(agent.pid, pod)


def test_fallback_del_then_the_runtime_deletes_the_netns(node: Node) -> None:
    """What a runtime does: DEL, then delete the netns at once. The tail still deletes the link
    in the (pinned) netns, then lets it go: ADD/DEL again on a new netns works, nothing left."""
    require_root()
    rig = Rig(node, "fallback", "agent", node.tmp / "agent.sock")
    with maybe_agent(node, "agent", rig.sock) as agent:
        assert agent is not None
        for _ in range(3):
            pod, c = _netns(), cid()
            try:
                assert rig.call("ADD", c, pod).rc == 0
                assert rig.call("DEL", c, pod).rc == 0
            finally:
                del_netns(Path(pod).name)
        settle(node.state_dir)
        assert records_left(node.state_dir) == [] and node.leases() == []
        assert not [fd for fd in Path(f"/proc/{agent.pid}/fd").iterdir()
                    if _is_netns(fd)]


def _is_netns(fd: Path) -> bool:
    try:
        return os.stat(fd).st_dev == os.stat("/proc/self/ns/net").st_dev  # on nsfs
    except OSError:
        return False


@pytest.mark.parametrize("finisher", ["agent-start", "gc"])
def test_fallback_agent_killed_before_the_tail_is_finished_later(
        node: Node, pod: str, finisher: str) -> None:
    """SIGKILL of the agent right after the answer: the macvlan is still in the pod, the record
    says delPending. The next agent start, or a standalone GC that does not list the attachment,
    deletes the link and drops the record; the lease stays released."""
    require_root()
    rig = Rig(node, "fallback", "agent", node.tmp / "agent.sock")
    c = cid()
    with maybe_agent(node, "agent", rig.sock, fault="deferred-del:kill") as agent:
        assert agent is not None
        assert rig.call("ADD", c, pod).rc == 0
        assert rig.call("DEL", c, pod).rc == 0
        agent.wait(30)
        assert agent.returncode == -signal.SIGKILL
    record = _record(node, c)
    assert record is not None and record["delPending"] is True
    assert "net1" in links(Path(pod).name) and node.leases() == []
    if finisher == "gc":
        alone = Rig(node, "fallback", "standalone", node.tmp / "agent.sock")
        gc = alone.conf(cniVersion="1.1.0", **{"cni.dev/valid-attachments": []})
        reply = alone.call("GC", "", "", conf=gc)
        assert reply.rc == 0, reply.stdout
    else:
        with maybe_agent(node, "agent", rig.sock):
            wait_until("the agent start finishes the DEL", lambda: _record(node, c) is None)
    assert links(Path(pod).name) == {"lo"}
    left = [f for f in records_left(node.state_dir) if not f.startswith("attach_lock/")]
    assert left == [] and node.leases() == []
