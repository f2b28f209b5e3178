"""Issue 11 items 3 and 8 through the real shim, standalone and via the agent.

3. DEL and ADD of one attachment serialize (the per-attachment lock every verb takes first);
   a DEL that wins makes the late ADD fail with nothing attached (the DEL's tombstone).
8. A damaged record (truncated, unknown mode, no ``pf``) is quarantined and the attachment
   found again (the VF from its owner record, the fallback link in the pod, the lease by
   container ID); DEL and GC never fail forever on it; ``.tmp*`` leftovers are swept.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reliability.conftest import Node, cid, files_under, links, settle
from tests.reliability.del_harness import (
    MODES,
    VIAS,
    Rig,
    finish,
    flock_held,
    has_open,
    maybe_agent,
    open_count,
    stopped,
    wait_until,
)

pytestmark = pytest.mark.root


@pytest.fixture(params=VIAS)
def vf_rig(request: pytest.FixtureRequest, node: Node) -> Iterator[Rig]:
    r = Rig(node, "vf", request.param, node.tmp / "agent.sock")
    with maybe_agent(node, request.param, r.sock) as agent:
        r.agent_pid = agent.pid if agent else None  # type: ignore[attr-defined]
        yield r


def test_del_while_add_waits_for_the_vf_leaves_nothing(vf_rig: Rig, pod: str) -> None:
    """The issue's interleaving: ADD queued on the VF lock (another verb holds the VF), the
    runtime's DEL without deviceID arrives. Was: DEL returned 0 at once, then the ADD
    completed and left the VF in the pod, the record, the owner and the lease."""
    rig = vf_rig
    vf_before = rig.node.vf_view(0)
    pci = rig.node.kernel_vfs()[0].address
    vf_lock = rig.node.state_dir / "pci" / "vf_lock" / f"{pci}.lock"
    c = cid()
    no_device = {k: v for k, v in rig.conf().items() if k != "deviceID"}
    with flock_held(vf_lock):
        add = rig.start("ADD", c, pod)
        waiter = rig.agent_pid or add.pid  # type: ignore[attr-defined]
        wait_until("the ADD waits on the VF lock", lambda: has_open(waiter, vf_lock))
        delete = rig.start("DEL", c, pod, conf=no_device)
        # the DEL has returned (it did not wait for the ADD) or waits behind the ADD on the
        # attachment lock (in the agent, a second fd on it: the ADD holds the first)
        att_lock = rig.node.state_dir / "attach_lock" / f"{c}-net1.lock"
        del_waiter, held_by_add = (rig.agent_pid, 1) if rig.agent_pid else (delete.pid, 0)
        wait_until("the DEL returned or waits for the ADD", lambda: delete.poll() is not None
                   or open_count(del_waiter, att_lock) > held_by_add)
    added, deleted = finish(add), finish(delete)
    assert deleted.rc == 0, deleted.stdout
    assert added.rc in (0, 1), added.stdout  # either order is fine; what is left is not
    assert rig.leftovers(pod, vf_before) == []


@pytest.mark.parametrize("mode", MODES)
def test_late_add_after_a_winning_del_fails_and_leaves_nothing(node: Node, pod: str,
                                                               mode: str) -> None:
    """ADD stopped right before the attachment lock (SIGSTOP fault point), the runtime's DEL
    runs to completion, then the ADD goes on: it must fail and attach nothing. A fresh ADD of
    the same attachment afterwards works."""
    rig = Rig(node, mode, "standalone", node.tmp / "agent.sock")
    vf_before = node.vf_view(0)
    c = cid()
    add = rig.start("ADD", c, pod, SRIOV_CNI_FAULT="attachment-lock:stop")
    try:
        wait_until("the ADD stopped at the attachment lock", lambda: stopped(add.pid))
        assert rig.call("DEL", c, pod).rc == 0
    finally:
        add.send_signal(signal.SIGCONT)
    late = finish(add)
    assert late.rc == 1 and late.out and late.out["code"] == 11, late.stdout
    assert "deleted while this ADD was queued" in late.out["msg"]
    assert rig.leftovers(pod, vf_before) == []
    assert rig.call("ADD", c, pod).rc == 0  # a new ADD after the DEL is not late
    assert rig.call("DEL", c, pod).rc == 0
    assert rig.leftovers(pod, vf_before) == []


# ----------------------------------------------------------------- item 8: damaged records
DAMAGE = {
    "truncated": lambda raw: raw[: len(raw) // 2],
    "unknown-mode": lambda raw: json.dumps({**json.loads(raw), "mode": "st-bogus"}).encode(),
    "no-pf": lambda raw: json.dumps(
        {**json.loads(raw), "vf": {k: v for k, v in (json.loads(raw).get("vf") or {}).items()
                                   if k != "pf"}}).encode(),
}


@pytest.fixture(params=[(m, v) for m in MODES for v in VIAS], ids=lambda p: f"{p[0]}-{p[1]}")
def rig(request: pytest.FixtureRequest, node: Node) -> Iterator[Rig]:
    mode, via = request.param
    r = Rig(node, mode, via, node.tmp / "agent.sock")
    with maybe_agent(node, via, r.sock):
        yield r


def _damage(rig: Rig, c: str, how: str) -> Path:
    record = rig.node.state_dir / f"{c}-net1"
    record.write_bytes(DAMAGE[how](record.read_bytes()))
    return record


@pytest.mark.parametrize("how", list(DAMAGE))
@pytest.mark.parametrize("verb", ["DEL", "GC"])
def test_damaged_record_is_quarantined_and_the_attachment_recovered(
        rig: Rig, pod: str, how: str, verb: str) -> None:
    """Was: a truncated record gave DEL rc 0 with the VF left in the pod; an unknown mode 999
    on every DEL and GC; a record without pf 105 forever."""
    if how == "no-pf" and rig.mode == "fallback":
        pytest.skip("a fallback record has no pf (the VF part is absent)")
    vf_before = rig.node.vf_view(0)
    c = cid()
    assert rig.call("ADD", c, pod).rc == 0
    _damage(rig, c, how)
    if verb == "DEL":
        reply = rig.call("DEL", c, pod)
    else:
        gc = rig.conf(cniVersion="1.1.0", **{"cni.dev/valid-attachments": []})
        gc.pop("deviceID", None)
        reply = rig.call("GC", "", "", conf=gc)
    assert reply.rc == 0, reply.stdout
    settle(rig.node.state_dir)  # an agent's DEL answers before the VF's move home (deferred)
    quarantined = [f for f in files_under(rig.node.state_dir) if f.startswith("quarantine/")]
    assert len(quarantined) == 1 and quarantined[0].startswith(f"quarantine/{c}-net1.")
    if (rig.mode, verb, how) == ("fallback", "GC", "truncated"):
        # nothing in a truncated fallback record names the pod: the link waits for the
        # runtime's DEL, which finds it in CNI_NETNS (the lease went with IPAM GC)
        assert links(Path(pod).name) == {"lo", "net1"}
        assert rig.call("DEL", c, pod).rc == 0
    assert links(Path(pod).name) == {"lo"}
    assert rig.node.leases() == []
    if rig.mode == "vf":
        assert rig.node.vf_view(0) == vf_before  # exactly as before: from the owner's copy
    for q in quarantined:
        (rig.node.state_dir / q).unlink()
    assert rig.leftovers(pod, vf_before) == []
    again = rig.call("DEL", c, pod)  # and never failing afterwards either
    assert again.rc == 0, again.stdout


def test_gc_removes_tmp_leftovers_of_dead_writers(node: Node, pod: str) -> None:
    """Was: ``.<record>.tmp<pid>`` files of a writer killed mid-write stayed forever."""
    rig = Rig(node, "vf", "standalone", node.tmp / "agent.sock")
    c = cid()
    assert rig.call("ADD", c, pod).rc == 0
    dead = node.state_dir / f".{c}-net1.tmp999999999"  # no such PID
    dead.write_bytes(b'{"mode": "vf", "truncat')
    owner_tmp = node.state_dir / "pci" / "owner" / ".0000:3b:10.0.tmp999999998"
    owner_tmp.write_bytes(b"{")
    gc = rig.conf(cniVersion="1.1.0", **{"cni.dev/valid-attachments": [
        {"containerID": c, "ifname": "net1"}]})
    assert rig.call("GC", "", "", conf=gc).rc == 0
    assert not dead.exists() and not owner_tmp.exists()
    assert (node.state_dir / f"{c}-net1").exists()  # the valid attachment stays
    assert rig.call("DEL", c, pod).rc == 0
