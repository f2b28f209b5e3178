"""Fault injection in the fallback mode (macvlan): SIGKILL at each ADD step, then DEL or GC.

``SRIOV_CNI_FAULT=<step>:kill`` kills the standalone CNI (the real ``sriov`` executable) or the
agent just before ``<step>`` (:data:`cni.fallback.ADD_STEPS`). Recovery is the runtime's DEL,
or a GC whose ``cni.dev/valid-attachments`` is empty (the runtime lost the pod): either way
nothing may be left - no link in the pod netns (final or temporary name), no lease, no
attachment record, no 8021q sub-interface on the master. The ``vlan-parent`` step (an 8021q
parent, which this kernel cannot create) runs in the VM tier: tests/vm/test_faults_vm.py.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require_root
from tests.reliability.conftest import FAULT_MATRIX, FULL, cid
from tests.reliability.fallback_faults import (
    NO_VLAN_STEPS,
    RECOVERIES,
    FallbackRig,
    after,
    agent,
    fallback_master,
    outcome,
)

pytestmark = pytest.mark.root
AFTER = after(NO_VLAN_STEPS)
AGENT_STEPS = NO_VLAN_STEPS if FULL else ("rename", "save-result")


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[FallbackRig]:
    require_root()
    with fallback_master() as master:
        yield FallbackRig(tmp=tmp_path, master=master)


@pytest.mark.parametrize("how", RECOVERIES)
@pytest.mark.parametrize("step", NO_VLAN_STEPS)
def test_kill_standalone_fallback_mid_add_then_recover(
    rig: FallbackRig, pod: str, step: str, how: str
) -> None:
    c = cid()
    add = rig.kill_add(c, pod, step)
    assert add.rc == -signal.SIGKILL, f"ADD was not killed at {step}: rc={add.rc} {add.stdout}"
    reply = rig.recover(how, c, pod)
    problems = rig.leftovers(pod)
    FAULT_MATRIX[(f"fallback standalone, {how}", AFTER[step])] = outcome(reply, problems, how)
    assert reply.rc == 0, reply.stdout
    assert problems == []


@pytest.mark.parametrize("how", RECOVERIES)
@pytest.mark.parametrize("step", AGENT_STEPS)
def test_kill_agent_mid_fallback_add_then_recover_through_new_agent(
    rig: FallbackRig, pod: str, step: str, how: str
) -> None:
    c = cid()
    sock = rig.tmp / "agent.sock"
    via_agent = {"SRIOV_CNI_AGENT_SOCKET": str(sock)}
    with agent(rig, sock, f"{step}:kill") as proc:
        add = rig.kill_add(c, pod, step, **via_agent)  # the agent acts on its own fault env
        assert proc.wait(30) == -signal.SIGKILL, "the agent was not killed"
        assert add.rc != 0 and add.out and add.out["code"] == 11, add.stdout  # try again later
    with agent(rig, sock):
        reply = rig.recover(how, c, pod, **via_agent)
    problems = rig.leftovers(pod)
    FAULT_MATRIX[(f"fallback agent, {how}", AFTER[step])] = outcome(reply, problems, how)
    assert reply.rc == 0, reply.stdout
    assert problems == []


def test_a_crashed_add_does_not_take_a_live_attachment_with_it(rig: FallbackRig, pod: str) -> None:
    """GC after a crash removes only the crashed attachment; the live one keeps its link and IP."""
    from tests.reliability.conftest import del_netns, links, new_netns, run_shim

    live = cid()
    added = run_shim(rig.env("ADD", live, pod), rig.stdin())
    assert added.rc == 0, added.stdout
    other = new_netns()
    try:
        crashed = cid()
        assert rig.kill_add(crashed, f"/var/run/netns/{other}", "save-result").rc == -signal.SIGKILL
        gc = rig.stdin(**{"cni.dev/valid-attachments": [{"containerID": live, "ifname": "net1"}]})
        reply = run_shim(rig.env("GC", "", ""), gc)
        assert reply.rc == 0, reply.stdout
        assert links(other) == {"lo"}
        assert links(Path(pod).name) == {"lo", "net1"} and len(rig.leases()) == 1
        assert len(rig.records()) == 1
    finally:
        del_netns(other)
    assert run_shim(rig.env("DEL", live, pod), rig.stdin()).rc == 0
    assert rig.leftovers(pod) == []
