"""Rebinding a real VF to vfio-pci (DPDK mode) gives /dev/vfio/<iommu group>."""

from __future__ import annotations

from pathlib import Path

from tests.vm import hw
from tests.vm.conftest import EnableVfs


def test_vf_rebinds_to_vfio_pci_and_back(sriov_pf: hw.RealPf, enable_vfs: EnableVfs) -> None:
    vf = enable_vfs(sriov_pf, 2)[1]
    group = vf.iommu_group
    assert group is not None, "no iommu_group: the guest needs intel_iommu=on + intel-iommu"

    hw.bind_driver(vf, "vfio-pci")
    try:
        assert vf.driver == "vfio-pci"
        assert vf.netdev is None, "a vfio-bound VF has no netdev"
        assert Path("/dev/vfio", str(group)).is_char_device()
    finally:
        hw.bind_driver(vf, None)

    hw.wait_for(lambda: vf.driver == "igbvf", what=f"{vf.address} back on igbvf")
    hw.wait_for(lambda: vf.netdev, what=f"{vf.address} netdev after rebinding")
