"""sriov.sysfs discovery against the real kernel's sysfs (igb PFs with igbvf VFs)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.vm import hw
from tests.vm.conftest import EnableVfs, colleague_module


def test_inventory_reports_the_real_pf_and_its_vfs(sriov_pf: hw.RealPf,
                                                   enable_vfs: EnableVfs) -> None:
    sysfs = colleague_module("sriov.sysfs")
    vfs = enable_vfs(sriov_pf, 3)

    inventory = sysfs.SysfsReader(Path("/")).inventory()

    pf = inventory.pf(sriov_pf.address)
    assert pf is not None, f"PF {sriov_pf.address} missing from {inventory.pfs}"
    assert pf.driver == "igb"
    assert pf.total_vfs == 7 and pf.num_vfs == 3
    assert pf.netdev == sriov_pf.netdev
    assert pf.vf_addresses == tuple(vf.address for vf in vfs)
    found = inventory.vfs_of(sriov_pf.address)
    assert [(v.index, v.address) for v in found] == [(vf.index, vf.address) for vf in vfs]
    for got, vf in zip(found, vfs, strict=True):
        assert got.driver == "igbvf"
        assert got.netdev == vf.netdev
        assert got.pf_netdev == sriov_pf.netdev
        assert (got.vendor_id, got.device_id) == ("8086", "10ca")
        assert got.iommu_group == vf.iommu_group
    assert inventory.skipped == ()


def test_vf_netdev_follows_the_vf_out_of_the_host_netns(sriov_pf: hw.RealPf,
                                                        enable_vfs: EnableVfs,
                                                        netns: str) -> None:
    sysfs = colleague_module("sriov.sysfs")
    vf = enable_vfs(sriov_pf, 1)[0]
    name = str(vf.netdev)
    reader = sysfs.SysfsReader(Path("/"))
    assert reader.vf_netdev(vf.address) == name

    subprocess.run(["ip", "link", "set", name, "netns", netns], check=True)
    try:
        assert reader.vf_netdev(vf.address) is None
    finally:
        subprocess.run(["ip", "-n", netns, "link", "set", name, "netns", "1"], check=True)
    hw.wait_for(lambda: reader.vf_netdev(vf.address) == name, what=f"{name} back in sysfs")
