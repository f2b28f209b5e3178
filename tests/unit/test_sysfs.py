"""SysfsReader over emulated trees shaped like real X710 / ConnectX-5 / 82576 hosts."""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
from pathlib import Path

import pytest

from sriov.emulate.profiles import INTEL_82576, INTEL_X710, MELLANOX_CX5
from sriov.emulate.tree import PfSpec, SysfsTreeBuilder
from sriov.errors import DeviceNotFoundError, InvalidInputError
from sriov.sysfs import SysfsReader
from sriov.types import DriverKind, LinkType


def dev(root: Path, addr: str) -> Path:
    return root / "sys/bus/pci/devices" / addr


@pytest.fixture
def x710(tmp_path: Path) -> Path:
    """A dual-port X710 on one device (3b:00.0 / 3b:00.1), VF 2 of port 0 on vfio-pci."""
    b = SysfsTreeBuilder(tmp_path)
    b.add_pf(PfSpec(address="0000:3b:00.0", ifname="ens1f0", profile=INTEL_X710, num_vfs=4,
                    numa_node=0, mtu=9000,
                    vf_ifnames=("ens1f0v0", "ens1f0v1", None, "ens1f0v3"),
                    vf_drivers={2: "vfio-pci"}))
    b.add_pf(PfSpec(address="0000:3b:00.1", ifname="ens1f1", profile=INTEL_X710, num_vfs=2,
                    numa_node=0, vf_ifnames=("ens1f1v0", "ens1f1v1")))
    return tmp_path


def test_x710_two_ports_on_one_device(x710: Path) -> None:
    inv = SysfsReader(x710).inventory()
    assert [p.address for p in inv.pfs] == ["0000:3b:00.0", "0000:3b:00.1"]
    assert inv.skipped == ()
    pf0 = inv.pf("0000:3b:00.0")
    assert pf0 is not None
    assert (pf0.vendor_id, pf0.device_id, pf0.driver) == ("8086", "1572", "i40e")
    assert pf0.netdevs == ("ens1f0",)
    assert (pf0.total_vfs, pf0.num_vfs, pf0.numa_node, pf0.mtu) == (64, 4, 0, 9000)
    assert pf0.link_type is LinkType.ETHER
    assert pf0.vf_addresses == ("0000:3b:02.0", "0000:3b:02.1", "0000:3b:02.2", "0000:3b:02.3")
    # port 1's VFs follow port 0's 64-VF range
    assert inv.vfs_of("0000:3b:00.1")[0].address == "0000:3b:0a.0"
    vf1 = inv.vf("0000:3b:02.1")
    assert vf1 is not None
    assert (vf1.index, vf1.pf_address, vf1.pf_netdev) == (1, "0000:3b:00.0", "ens1f0")
    assert (vf1.vendor_id, vf1.device_id, vf1.driver, vf1.netdev) == (
        "8086", "154c", "iavf", "ens1f0v1")
    assert vf1.numa_node == 0 and vf1.is_rdma is False and vf1.link_type is LinkType.ETHER
    groups = [v.iommu_group for v in inv.vfs]
    assert None not in groups and len(set(groups)) == len(groups)


def test_vfio_bound_vf_has_no_netdev_but_an_iommu_group(x710: Path) -> None:
    vf = SysfsReader(x710).vf("0000:3b:02.2")
    assert vf.driver == "vfio-pci" and vf.driver_kind is DriverKind.VFIO
    assert vf.netdev is None
    assert vf.iommu_group is not None
    assert (x710 / "dev/vfio" / str(vf.iommu_group)).exists()
    assert not (dev(x710, "0000:3b:02.2") / "net").exists()


def test_vf_moved_to_another_netns_shows_an_empty_net_dir(x710: Path) -> None:
    SysfsTreeBuilder(x710).set_vf_netdev("0000:3b:02.1", None)
    reader = SysfsReader(x710)
    vf = reader.vf("0000:3b:02.1")
    assert vf.netdev is None and vf.driver == "iavf"
    assert reader.vf_netdev("0000:3b:02.1") is None
    assert reader.vf_netdev("0000:3b:02.0") == "ens1f0v0"
    assert os.listdir(dev(x710, "0000:3b:02.1") / "net") == []


def test_connectx5_vfs_are_rdma(tmp_path: Path) -> None:
    SysfsTreeBuilder(tmp_path).add_pf(PfSpec(
        address="0000:5e:00.0", ifname="enp94s0f0", profile=MELLANOX_CX5, num_vfs=3,
        numa_node=1, vf_ifnames=("enp94s0f0v0", "enp94s0f0v1", "enp94s0f0v2")))
    inv = SysfsReader(tmp_path).inventory()
    (pf,) = inv.pfs
    assert (pf.vendor_id, pf.device_id, pf.driver, pf.total_vfs) == ("15b3", "1017", "mlx5_core", 8)
    assert [v.address for v in inv.vfs] == ["0000:5e:00.2", "0000:5e:00.3", "0000:5e:00.4"]
    assert all(v.is_rdma and v.device_id == "1018" and v.driver == "mlx5_core" for v in inv.vfs)
    assert all(v.numa_node == 1 for v in inv.vfs)
    assert sorted(os.listdir(tmp_path / "sys/class/infiniband")) == [f"mlx5_{i}" for i in range(4)]


def test_igb_interleaved_vf_addresses_map_to_the_right_index(tmp_path: Path) -> None:
    b = SysfsTreeBuilder(tmp_path)
    for fn in (0, 1):
        b.add_pf(PfSpec(address=f"0000:01:00.{fn}", ifname=f"eno{fn + 1}", profile=INTEL_82576,
                        num_vfs=7))
    reader = SysfsReader(tmp_path)
    pf0 = reader.pf("0000:01:00.0")
    assert pf0.total_vfs == 7 and pf0.driver == "igb"
    assert pf0.vf_addresses[:3] == ("0000:01:10.0", "0000:01:10.2", "0000:01:10.4")
    vf = reader.vf("0000:01:10.3")
    assert (vf.pf_address, vf.index, vf.driver, vf.device_id) == (
        "0000:01:00.1",
        1,
        "igbvf",
        "10ca",
    )
    assert reader.vf_of("0000:01:00.0", 6).address == "0000:01:11.4"


def test_vf_index_comes_from_virtfn_links_not_address_order(tmp_path: Path) -> None:
    addrs = ("0000:3b:05.0", "0000:3b:02.1", "0000:3b:03.7")
    SysfsTreeBuilder(tmp_path).add_pf(PfSpec(address="0000:3b:00.0", ifname="ens1f0",
                                             num_vfs=3, vf_addresses=addrs))
    reader = SysfsReader(tmp_path)
    assert reader.pf("0000:3b:00.0").vf_addresses == addrs
    assert [reader.vf(a).index for a in addrs] == [0, 1, 2]
    assert [v.index for v in reader.inventory().vfs] == [0, 1, 2]


def test_garbage_totalvfs_skips_that_pf_and_keeps_the_rest(x710: Path,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    (dev(x710, "0000:3b:00.1") / "sriov_totalvfs").write_text("abc\n")
    with caplog.at_level(logging.WARNING, logger="sriov.sysfs"):
        inv = SysfsReader(x710).inventory()
    assert [p.address for p in inv.pfs] == ["0000:3b:00.0"]
    assert len(inv.vfs) == 4
    reasons = {os.path.basename(s.path): s.reason for s in inv.skipped}
    assert "sriov_totalvfs" in reasons and "'abc'" in reasons["sriov_totalvfs"]
    assert reasons["0000:3b:0a.0"] == "its PF 0000:3b:00.1 was skipped"
    assert "sriov_totalvfs" in caplog.text


def test_dangling_physfn_is_skipped_with_a_reason(x710: Path) -> None:
    pf_dir = dev(x710, "0000:3b:00.1").resolve()
    shutil.rmtree(pf_dir)
    dev(x710, "0000:3b:00.1").unlink()
    inv = SysfsReader(x710).inventory()
    assert [p.address for p in inv.pfs] == ["0000:3b:00.0"]
    skipped = {os.path.basename(s.path): s.reason for s in inv.skipped}
    assert set(skipped) == {"0000:3b:0a.0", "0000:3b:0a.1"}
    assert "dangling" in skipped["0000:3b:0a.0"]
    with pytest.raises(DeviceNotFoundError, match="dangling"):
        SysfsReader(x710).vf("0000:3b:0a.0")


def test_vf_without_physfn_is_skipped(x710: Path) -> None:
    (dev(x710, "0000:3b:02.3") / "physfn").unlink()
    inv = SysfsReader(x710).inventory()
    assert inv.vf("0000:3b:02.3") is None and len(inv.vfs) == 5
    assert any("no physfn link back" in s.reason for s in inv.skipped)


def test_missing_numa_node_means_no_topology(x710: Path) -> None:
    (dev(x710, "0000:3b:00.0") / "numa_node").unlink()
    (dev(x710, "0000:3b:02.0") / "numa_node").unlink()
    inv = SysfsReader(x710).inventory()
    assert inv.skipped == ()
    assert inv.pfs[0].numa_node is None and inv.vfs[0].numa_node is None
    assert inv.vfs[1].numa_node == 0


def test_non_network_sriov_devices_are_ignored(tmp_path: Path) -> None:
    nvme = dataclasses.replace(INTEL_X710, pci_class="0x010802")
    SysfsTreeBuilder(tmp_path).add_pf(PfSpec(address="0000:3b:00.0", ifname=None,
                                             profile=nvme, num_vfs=2))
    inv = SysfsReader(tmp_path).inventory()
    assert (inv.pfs, inv.vfs, inv.skipped) == ((), (), ())


def test_infiniband_link_type(tmp_path: Path) -> None:
    SysfsTreeBuilder(tmp_path).add_pf(PfSpec(
        address="0000:5e:00.0", ifname="ib0", profile=MELLANOX_CX5, num_vfs=1,
        link_type=LinkType.INFINIBAND, vf_ifnames=("ib0v0",)))
    inv = SysfsReader(tmp_path).inventory()
    assert inv.pfs[0].link_type is LinkType.INFINIBAND
    assert inv.vfs[0].link_type is LinkType.INFINIBAND


@pytest.mark.parametrize(("address", "hint"), [
    ("0000:3b:00.0", "is an SR-IOV PF, not a VF"),
    ("0000:3a:00.0", "not a VF: no physfn link"),  # the root port above the NIC
    ("0000:99:00.0", "no such PCI device"),
])
def test_vf_lookup_explains_what_the_address_is(x710: Path, address: str, hint: str) -> None:
    with pytest.raises(DeviceNotFoundError, match=hint) as err:
        SysfsReader(x710).vf(address)
    assert address in str(err.value)


def test_pf_lookup_explains_what_the_address_is(x710: Path) -> None:
    reader = SysfsReader(x710)
    with pytest.raises(DeviceNotFoundError, match=r"VF of 0000:3b:00\.0, not a PF"):
        reader.pf("0000:3b:02.0")
    with pytest.raises(DeviceNotFoundError, match="no sriov_totalvfs"):
        reader.pf("0000:3a:00.0")
    with pytest.raises(DeviceNotFoundError, match="PF has 4 VFs"):
        reader.vf_of("0000:3b:00.0", 4)


def test_malformed_address_is_invalid_input(x710: Path) -> None:
    with pytest.raises(InvalidInputError, match="PCI address"):
        SysfsReader(x710).vf("../../etc")


def test_short_address_form_is_accepted(x710: Path) -> None:
    assert SysfsReader(x710).vf("3b:02.0").address == "0000:3b:02.0"
