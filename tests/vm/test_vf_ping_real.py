"""VLAN isolation between real VFs, through our CNI (QEMU testbed only; skips elsewhere).

The two igb PFs of the testbed share one wire (QEMU hub 0). Three pods get a VF each through
CNI ADD in VF mode with host-local IPAM: A (PF 1, vlan 100), B (PF 2, vlan 100) and C (PF 2,
vlan 200). A reaches B across the wire; A never reaches C, although C has carrier and an
address in the same subnet (igb tags and filters by the port VLAN).
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.conftest import unique
from tests.vm import hw
from tests.vm.conftest import EnableVfs, link_with_carrier
from tests.vm.test_cni_vf_real import call, conf, ns_path

BUSYBOX = "/bin/busybox"


@contextlib.contextmanager
def pods(count: int) -> Iterator[list[str]]:
    """``count`` fresh netns (``st-`` names, lo up); all deleted afterwards."""
    names: list[str] = []
    try:
        for _ in range(count):
            name = unique("st-ns-")
            subprocess.run(["ip", "netns", "add", name], check=True)
            names.append(name)
            subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield names
    finally:
        for name in names:
            subprocess.run(["ip", "netns", "del", name], check=False)


def pod_has_carrier(netns: str, ifname: str = "net1") -> bool:
    out = subprocess.run(["ip", "-n", netns, "link", "show", "dev", ifname], capture_output=True,
                         text=True, check=False).stdout
    return "LOWER_UP" in out


def ping(netns: str, address: str, count: int = 1) -> bool:
    argv = ["ip", "netns", "exec", netns, BUSYBOX, "ping", "-c", str(count), "-W", "1", address]
    return subprocess.run(argv, capture_output=True, check=False).returncode == 0


def test_vfs_of_two_pfs_talk_on_one_port_vlan_and_not_across_vlans(
        sriov_pf_pair: tuple[hw.RealPf, hw.RealPf], enable_vfs: EnableVfs,
        tmp_path: Path) -> None:
    pf_a, pf_b = sriov_pf_pair
    vfs_a, vfs_b = enable_vfs(pf_a, 1), enable_vfs(pf_b, 2)
    for pf in (pf_a, pf_b):
        assert pf.netdev is not None
        link_with_carrier(pf.netdev)
    plan = [(vfs_a[0], 100, "st-pa"), (vfs_b[0], 100, "st-pb"), (vfs_b[1], 200, "st-pc")]
    with pods(len(plan)) as names:
        attached: list[tuple[dict[str, Any], str, str]] = []
        try:
            addresses = []
            for (vf, vlan, cid), netns in zip(plan, names, strict=True):
                c = {**conf(vf.address, tmp_path, vlan=vlan), "name": "st-ping"}
                c["ipam"]["ranges"] = [[{"subnet": "10.78.0.0/24"}]]
                rc, result = call("ADD", c, ns_path(netns), tmp_path, cid=cid)
                assert rc == 0, result
                attached.append((c, netns, cid))
                addresses.append(result["ips"][0]["address"].split("/")[0])
            for netns in names:  # igbvf carrier comes 6-7 s after the PF's
                hw.wait_for(lambda n=netns: pod_has_carrier(n), what=f"carrier on net1 in {netns}",
                            timeout=30)
            a, b, c_pod = names
            hw.wait_for(lambda: ping(a, addresses[1]), what="A (vlan 100) to ping B (vlan 100)",
                        timeout=30)
            assert ping(b, addresses[0])
            assert not ping(a, addresses[2], count=3), "VLAN 100 reached VLAN 200"
            assert not ping(c_pod, addresses[1], count=2), "VLAN 200 reached VLAN 100"
        finally:
            for c, netns, cid in reversed(attached):
                rc, out = call("DEL", c, ns_path(netns), tmp_path, cid=cid)
                assert rc == 0, out
