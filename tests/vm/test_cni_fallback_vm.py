"""Fallback link kinds the dev host kernel lacks: ipvlan (l2/l3/l3s) and the on-demand 8021q parent.

Runs in the QEMU testbed (hack/vm/test.sh); the master is a real veth (the kind matters, not the
NIC) and, for one test, a real VF netdev.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import require_link_kind
from tests.integration.test_cni_fallback_support import (  # noqa: F401 (fixtures)
    Cni,
    Lan,
    lan,
    link_json,
    ns_links,
    ns_path,
    sh,
)
from tests.vm import hw

pytestmark = pytest.mark.root


@pytest.fixture
def cni(tmp_path: Path, lan: Lan) -> Cni:  # noqa: F811
    return Cni(tmp_path, lan.master)


def host_link_exists(name: str) -> bool:
    return sh("ip", "link", "show", "dev", name, check=False).returncode == 0


@pytest.mark.parametrize("mode", ["l2", "l3", "l3s"])
def test_ipvlan_add_check_del(cni: Cni, netns: str, mode: str) -> None:
    require_link_kind("ipvlan")
    conf = cni.conf(type="ipvlan", mode=mode)
    result = cni.ok("ADD", conf, ns_path(netns))
    info = link_json(netns, "net1")
    assert info is not None and info["linkinfo"]["info_kind"] == "ipvlan"
    assert info["linkinfo"]["info_data"]["mode"] == mode
    cni.ok("CHECK", {**conf, "prevResult": result}, ns_path(netns))
    cni.ok("DEL", conf, ns_path(netns))
    assert ns_links(netns) == ["lo"] and cni.leases() == []


def test_vlan_parent_is_shared_and_removed_with_its_last_user(cni: Cni, tmp_path: Path) -> None:
    require_link_kind("vlan")
    conf = cni.conf(vlan=42)
    parent = f"{cni.master}.42"
    names = [f"st-vns{i}" for i in range(2)]
    for name in names:
        sh("ip", "netns", "add", name)
    try:
        for i, name in enumerate(names):
            cni.ok("ADD", conf, ns_path(name), cid=f"st-v{i}")
            assert link_json(name, "net1") is not None
        assert host_link_exists(parent)
        cni.ok("DEL", conf, ns_path(names[0]), cid="st-v0")
        assert host_link_exists(parent), "deleted the VLAN parent while a pod still uses it"
        assert link_json(names[1], "net1") is not None
        cni.ok("DEL", conf, ns_path(names[1]), cid="st-v1")
        assert not host_link_exists(parent)
        cni.ok("DEL", conf, ns_path(names[1]), cid="st-v1")  # idempotent
    finally:
        for name in names:
            sh("ip", "netns", "del", name, check=False)
        sh("ip", "link", "del", parent, check=False)


def test_vlan_parent_made_by_the_admin_is_kept(cni: Cni, netns: str) -> None:
    require_link_kind("vlan")
    parent = f"{cni.master}.43"
    sh("ip", "link", "add", "link", cni.master, "name", parent, "type", "vlan", "id", "43")
    try:
        conf = cni.conf(vlan=43)
        cni.ok("ADD", conf, ns_path(netns))
        cni.ok("DEL", conf, ns_path(netns))
        assert host_link_exists(parent)
    finally:
        sh("ip", "link", "del", parent, check=False)


def test_gc_recounts_vlan_users_from_records(cni: Cni) -> None:
    require_link_kind("vlan")
    conf = cni.conf("1.1.0", vlan=44)
    parent = f"{cni.master}.44"
    names = [f"st-gns{i}" for i in range(2)]
    for name in names:
        sh("ip", "netns", "add", name)
    try:
        for i, name in enumerate(names):
            cni.ok("ADD", conf, ns_path(name), cid=f"st-g{i}")
        sh("ip", "netns", "del", names[0])  # pod 0 vanished without a DEL
        cni.ok(
            "GC",
            {**conf, "cni.dev/valid-attachments": [{"containerID": "st-g1", "ifname": "net1"}]},
            "",
        )
        assert host_link_exists(parent) and len(cni.records()) == 1
        cni.ok("GC", {**conf, "cni.dev/valid-attachments": []}, "")
        assert not host_link_exists(parent) and cni.records() == [] and cni.leases() == []
    finally:
        for name in names:
            sh("ip", "netns", "del", name, check=False)
        sh("ip", "link", "del", parent, check=False)


def test_macvlan_on_a_real_vf_master(cni: Cni, netns: str, sriov_pf: hw.RealPf, enable_vfs) -> None:
    vf = enable_vfs(sriov_pf, 1)[0]
    subprocess.run(["ip", "link", "set", str(vf.netdev), "up"], check=True)
    conf = cni.conf(master=str(vf.netdev))
    cni.ok("ADD", conf, ns_path(netns))
    info = link_json(netns, "net1")
    assert info is not None and info["linkinfo"]["info_kind"] == "macvlan"
    cni.ok("DEL", conf, ns_path(netns))
