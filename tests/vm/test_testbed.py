"""The testbed itself: the guest kernel has real SR-IOV PFs whose VFs come and go."""

from __future__ import annotations

import os
from pathlib import Path

from tests.vm import hw
from tests.vm.conftest import EnableVfs

IGB_PF_DEVICE = "0x10c9"  # Intel 82576
IGB_VF_DEVICE = "0x10ca"  # Intel 82576 Virtual Function


def test_every_pf_is_an_igb_82576_that_offers_seven_vfs(sriov_pfs: tuple[hw.RealPf, ...]) -> None:
    for pf in sriov_pfs:
        assert pf.driver == "igb", pf
        assert pf.total_vfs == 7, pf
        assert (pf.device_dir / "device").read_text().strip() == IGB_PF_DEVICE
        assert pf.netdev is not None, f"{pf.address} has no netdev"


def test_sriov_numvfs_creates_linked_igbvf_vfs(sriov_pf: hw.RealPf, enable_vfs: EnableVfs) -> None:
    vfs = enable_vfs(sriov_pf, 4)

    assert [vf.index for vf in vfs] == [0, 1, 2, 3]
    assert (sriov_pf.device_dir / "sriov_numvfs").read_text().strip() == "4"
    for vf in vfs:
        assert os.readlink(vf.device_dir / "physfn").endswith(sriov_pf.address)
        assert (vf.device_dir / "device").read_text().strip() == IGB_VF_DEVICE
        assert vf.driver == "igbvf"
        assert vf.netdev is not None and Path("/sys/class/net", vf.netdev).exists()


def test_sriov_numvfs_zero_removes_the_vfs(sriov_pf: hw.RealPf, enable_vfs: EnableVfs) -> None:
    vfs = enable_vfs(sriov_pf, 2)

    hw.set_num_vfs(sriov_pf, 0)

    assert hw.vfs_of(sriov_pf) == ()
    assert not any(vf.device_dir.exists() for vf in vfs)
