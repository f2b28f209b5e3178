"""Fallback with an on-demand 8021q parent, SIGKILLed at each ADD step, on a real kernel.

Runs in the QEMU testbed (8021q and ipvlan exist there, not on the dev host):
``hack/vm/run.sh -- .venv/bin/python -m pytest tests/vm/test_faults_vm.py -q``. The master is a
real veth (the link kinds matter, not the NIC). After a kill at each step of
:data:`cni.fallback.ADD_STEPS`, the runtime's DEL or a GC with an empty valid list must leave no
stray 8021q sub-interface ``<master>.<vid>``, no marker, no record, no lease and no link in the
pod netns. DEL runs with ipvlan, GC with macvlan, so each kind and each recovery meet every step.
"""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from cni.fallback import ADD_STEPS
from tests.conftest import require_link_kind
from tests.reliability.conftest import cid, del_netns, links, new_netns, run_shim
from tests.reliability.fallback_faults import (
    RECOVERIES,
    FallbackRig,
    fallback_master,
    vlan_links_on,
)

pytestmark = pytest.mark.root
VID = 47


@pytest.fixture
def master() -> Iterator[str]:
    require_link_kind("vlan")
    require_link_kind("ipvlan")
    with fallback_master() as name:
        yield name


@pytest.fixture
def pod() -> Iterator[str]:
    name = new_netns()
    try:
        yield f"/var/run/netns/{name}"
    finally:
        del_netns(name)


def _rig(tmp_path: Path, master: str, how: str) -> FallbackRig:
    return FallbackRig(
        tmp=tmp_path, master=master, kind="ipvlan" if how == "DEL" else "macvlan", vlan=VID
    )


@pytest.mark.parametrize("how", RECOVERIES)
@pytest.mark.parametrize("step", ADD_STEPS)
def test_kill_vlan_fallback_at_each_step_leaves_no_8021q_parent(
    tmp_path: Path, master: str, pod: str, step: str, how: str
) -> None:
    rig = _rig(tmp_path, master, how)
    c = cid()
    add = rig.kill_add(c, pod, step)
    assert add.rc == -signal.SIGKILL, f"ADD was not killed at {step}: rc={add.rc} {add.stdout}"
    if step in ("create", "rename", "up", "ipam", "save-result"):
        assert vlan_links_on(master) == [rig.vlan_parent], "the crash point is after the parent"
    reply = rig.recover(how, c, pod)
    assert reply.rc == 0, reply.stdout
    assert rig.leftovers(pod) == []


@pytest.mark.parametrize("how", RECOVERIES)
def test_recovering_a_crash_keeps_the_parent_of_a_live_pod(
    tmp_path: Path, master: str, pod: str, how: str
) -> None:
    rig = _rig(tmp_path, master, how)
    live = cid()
    added = run_shim(rig.env("ADD", live, pod), rig.stdin())
    assert added.rc == 0, added.stdout
    other = new_netns()
    try:
        crashed, other_pod = cid(), f"/var/run/netns/{other}"
        assert rig.kill_add(crashed, other_pod, "ipam").rc == -signal.SIGKILL
        if how == "DEL":
            reply = rig.recover("DEL", crashed, other_pod)
        else:
            valid = [{"containerID": live, "ifname": "net1"}]
            reply = run_shim(
                rig.env("GC", "", ""), rig.stdin(**{"cni.dev/valid-attachments": valid})
            )
        assert reply.rc == 0, reply.stdout
        assert links(other) == {"lo"}
        assert vlan_links_on(master) == [rig.vlan_parent], "the live pod's 8021q parent went away"
        assert links(Path(pod).name) == {"lo", "net1"} and len(rig.leases()) == 1
    finally:
        del_netns(other)
    assert run_shim(rig.env("DEL", live, pod), rig.stdin()).rc == 0
    assert rig.leftovers(pod) == []


def test_recovering_a_crash_keeps_an_admin_made_parent(
    tmp_path: Path, master: str, pod: str
) -> None:
    rig = _rig(tmp_path, master, "GC")
    parent = str(rig.vlan_parent)
    subprocess.run(
        ["ip", "link", "add", "link", master, "name", parent, "type", "vlan", "id", str(VID)],
        check=True,
    )
    c = cid()
    assert rig.kill_add(c, pod, "save-result").rc == -signal.SIGKILL
    reply = run_shim(
        rig.env("GC", "", ""), json.dumps({**rig.conf(), "cni.dev/valid-attachments": []}).encode()
    )
    assert reply.rc == 0, reply.stdout
    assert vlan_links_on(master) == [parent], "GC deleted the administrator's 8021q sub-interface"
    assert links(Path(pod).name) == {"lo"} and rig.records() == [] and rig.leases() == []
