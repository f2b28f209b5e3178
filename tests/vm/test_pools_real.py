"""Selector pools (sriov.pools) over the real igb PFs and igbvf / vfio-pci VFs (QEMU testbed).

What an operator checks with ``sriovctl pools``: each pool gets exactly the VFs its
selectors name (PF netdev with a VF range, PF PCI address, driver, vendor/device IDs),
the first pool in config order wins, and every VF left out says why.
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

from tests.vm import hw
from tests.vm.conftest import EnableVfs, colleague_module

IGBVF_DEVICE = "10ca"
"""PCI device ID of the 82576 VF (igbvf)."""


def test_pools_select_the_real_vfs_by_pf_range_driver_and_ids(
        sriov_pfs: tuple[hw.RealPf, ...], enable_vfs: EnableVfs) -> None:
    pools = colleague_module("sriov.pools")
    sysfs = colleague_module("sriov.sysfs")
    pf0 = sriov_pfs[0]
    vfs0 = enable_vfs(pf0, 4)
    hw.bind_driver(vfs0[3], "vfio-pci")
    other = sriov_pfs[1] if len(sriov_pfs) > 1 else None
    vfs1 = enable_vfs(other, 2) if other is not None else ()
    assert pf0.netdev is not None
    config = pools.PoolConfig.parse({"resourceList": [
        {"resourceName": "pf0_low",
         "selectors": [{"pfNames": [f"{pf0.netdev}#0-1"], "drivers": ["igbvf"]}]},
        {"resourceName": "dpdk", "selectors": [{"drivers": ["vfio-pci"]}]},
        {"resourceName": "second_pf", "selectors": [
            {"rootDevices": [other.address if other else "0000:ff:1f.7"],
             "vendors": ["8086"], "devices": [IGBVF_DEVICE]}]},
    ]})

    selection = pools.select(config, sysfs.SysfsReader(Path("/")).inventory())

    def members(name: str) -> list[str]:
        return [vf.address for vf in selection.pools[f"intel.com/{name}"]]

    assert members("pf0_low") == [vfs0[0].address, vfs0[1].address]
    assert members("dpdk") == [vfs0[3].address]
    assert members("second_pf") == [vf.address for vf in vfs1]
    # the testbed's virtio-net NIC (no SR-IOV, no pool selects it) has a reason too
    igb_reasons = {a for a in selection.reasons
                   if not any(Path("/sys/bus/pci/devices", a).glob("virtio*"))}
    assert igb_reasons == {vfs0[2].address}, selection.reasons
    why = selection.reasons[vfs0[2].address]
    assert f"pfNames: {pf0.netdev} VF 2 not in #0-1" in why, why
    assert "drivers" in why, why


def test_sriovctl_pools_json_reports_real_vfs_and_reasons(
        sriov_pf: hw.RealPf, enable_vfs: EnableVfs, tmp_path: Path) -> None:
    cli = colleague_module("sriov.cli.pools")
    vfs = enable_vfs(sriov_pf, 3)
    config = tmp_path / "pools.json"
    config.write_text(json.dumps({"resourceList": [
        {"resourceName": "first_two", "resourcePrefix": "example.com",
         "selectors": [{"rootDevices": [f"{sriov_pf.address}#0-1"]}]}]}))
    out, err = io.StringIO(), io.StringIO()
    args = argparse.Namespace(config=config, sysfs_root=Path("/"),
                              resource_prefix="intel.com", json=True)

    assert cli.run(args, stdout=out, stderr=err) == 0, err.getvalue()

    doc = json.loads(out.getvalue())
    [pool] = doc["pools"]
    assert pool["resourceName"] == "example.com/first_two"
    assert [(v["pciAddress"], v["vfIndex"], v["driver"], v["pfName"], v["netdev"])
            for v in pool["vfs"]] == [(vf.address, vf.index, "igbvf", sriov_pf.netdev,
                                       vf.netdev) for vf in vfs[:2]]
    left = [v for v in doc["notSelected"] if v["pfAddress"] == sriov_pf.address]
    assert [v["pciAddress"] for v in left] == [vfs[2].address]
    assert any("not in #0-1" in r for r in left[0]["reasons"]), left
