"""Discovery of every device class from an emulated tree laid out as the kernel does."""

from __future__ import annotations

from pathlib import Path

import pytest

from sriov import devclass
from sriov.emulate.profiles import INTEL_N3000_FEC, MELLANOX_BF2, MELLANOX_CX5, VIRTIO_NET
from sriov.emulate.tree import PfSpec, SysfsTreeBuilder
from sriov.sysfs import SysfsReader
from sriov.types import DeviceClass, LinkType, RdmaDevice, VdpaDevice

PF = "0000:3b:00.0"


@pytest.fixture
def tree(tmp_path: Path) -> SysfsTreeBuilder:
    return SysfsTreeBuilder(tmp_path)


def mlx(tree: SysfsTreeBuilder, vfs: int = 2, **kw) -> list[str]:
    built = tree.add_pf(PfSpec(address=PF, ifname="p0", profile=MELLANOX_BF2, num_vfs=vfs,
                               vf_ifnames=tuple(f"p0v{i}" for i in range(vfs)), **kw))
    return list(built.vf_addresses)


def by_id(root: Path) -> dict:
    return {d.id: d for d in SysfsReader(root).inventory().devices}


def test_rdma_devices_and_their_char_devices(tree: SysfsTreeBuilder) -> None:
    vf0, vf1 = mlx(tree)
    devices = by_id(tree.root)
    # the PF is mlx5_0 (its VFs are enabled, so it is no pool device); VFs follow
    assert devices[vf0].rdma_devices == (RdmaDevice(
        name="mlx5_1", char_devices=("issm1", "umad1", "uverbs1")),)
    assert devices[vf1].rdma_devices[0].name == "mlx5_2"
    # the char devices are the ones whose ibdev names the device, as on a real host
    assert (tree.sys / "class/infiniband_verbs/uverbs1/ibdev").read_text() == "mlx5_1\n"
    assert (tree.root / "dev/infiniband/uverbs1").exists()
    assert (tree.root / "dev/infiniband/rdma_cm").exists()
    assert devclass.char_devices(devices[vf0]) == (
        "/dev/infiniband/issm1", "/dev/infiniband/umad1", "/dev/infiniband/uverbs1")


def test_pkey_only_for_infiniband_links(tree: SysfsTreeBuilder) -> None:
    tree.add_pf(PfSpec(address=PF, ifname="ib0", profile=MELLANOX_CX5, num_vfs=1,
                       vf_ifnames=("ib0v0",), link_type=LinkType.INFINIBAND))
    tree.add_pf(PfSpec(address="0000:5e:00.0", ifname="p1", profile=MELLANOX_CX5, num_vfs=1,
                       vf_ifnames=("p1v0",)))
    devices = SysfsReader(tree.root).inventory().vfs
    assert [(d.link_type, d.pkey) for d in devices] == [
        (LinkType.INFINIBAND, "0xffff"), (LinkType.ETHER, None)]


def test_acpi_index_is_read_when_the_firmware_gives_one(tree: SysfsTreeBuilder) -> None:
    vf0, vf1 = mlx(tree)
    (Path(tree.sys / "bus/pci/devices" / vf0).resolve() / "acpi_index").write_text("101\n")
    devices = by_id(tree.root)
    assert (devices[vf0].acpi_index, devices[vf1].acpi_index) == ("101", None)


def test_uio_bound_vf_has_its_uio_node(tree: SysfsTreeBuilder) -> None:
    vf0, _ = mlx(tree)
    tree.bind_vf_driver(vf0, "uio_pci_generic")
    device = by_id(tree.root)[vf0]
    assert (device.driver, device.netdev, device.uio_device) == ("uio_pci_generic", None, "uio0")
    assert (tree.sys / "class/uio/uio0/name").read_text() == "uio_pci_generic\n"
    assert devclass.class_label(device) == "vf/uio+rdma"
    tree.bind_vf_driver(vf0, "mlx5_core", ifname="p0v0")
    assert by_id(tree.root)[vf0].uio_device is None
    assert not (tree.root / "dev/uio0").exists()


def test_vfio_noiommu_group(tree: SysfsTreeBuilder) -> None:
    tree.set_noiommu_mode(True)
    vf0, vf1 = mlx(tree, vf_drivers={0: "vfio-pci"})
    devices = by_id(tree.root)
    group = devices[vf0].iommu_group
    assert devices[vf0].noiommu and not devices[vf1].noiommu
    assert (tree.root / f"dev/vfio/noiommu-{group}").exists()
    assert not (tree.root / f"dev/vfio/{group}").exists()
    assert devclass.char_devices(devices[vf0])[0] == f"/dev/vfio/noiommu-{group}"


def test_vdpa_device_of_a_vf(tree: SysfsTreeBuilder) -> None:
    vf0, vf1 = mlx(tree)
    assert tree.add_vdpa(vf0, "vhost_vdpa") == "vdpa0"
    assert tree.add_vdpa(vf1, "virtio_vdpa") == "vdpa1"
    devices = by_id(tree.root)
    assert devices[vf0].vdpa == VdpaDevice(name="vdpa0", driver="vhost_vdpa",
                                           vhost_device="vhost-vdpa-0")
    assert devices[vf1].vdpa == VdpaDevice(name="vdpa1", driver="virtio_vdpa")
    assert (tree.root / "dev/vhost-vdpa-0").exists()


def test_subfunctions_are_aux_devices_with_sfnum_and_pf(tree: SysfsTreeBuilder) -> None:
    tree.add_pf(PfSpec(address=PF, ifname="p0", profile=MELLANOX_BF2, num_vfs=0))
    assert tree.add_sf(PF, 88, "p0s88") == "mlx5_core.sf.0"
    devices = by_id(tree.root)
    sf = devices["mlx5_core.sf.0"]
    assert (sf.device_class, sf.index, sf.pf_address, sf.pf_netdev, sf.netdev) == (
        DeviceClass.AUX_SF, 88, PF, "p0", "p0s88")
    assert (sf.vendor_id, sf.device_id, sf.driver) == ("15b3", "a2d6", "mlx5_core")
    assert [r.name for r in sf.rdma_devices] == ["mlx5_1"]
    # a PF without VFs is itself a NIC device (upstream: a PF with VFs is not)
    assert devices[PF].device_class is DeviceClass.NIC


def test_accelerator_pf_and_vfs(tree: SysfsTreeBuilder) -> None:
    built = tree.add_pf(PfSpec(address="0000:af:00.0", ifname=None, profile=INTEL_N3000_FEC,
                               num_vfs=2))
    inv = SysfsReader(tree.root).inventory()
    assert inv.pfs == () and inv.vfs == ()  # not a network device
    accel = {d.id: d for d in inv.others}
    assert list(accel) == ["0000:af:00.0", *built.vf_addresses]
    vf = accel[built.vf_addresses[1]]
    assert (vf.device_class, vf.index, vf.pf_address, vf.driver, vf.device_id) == (
        DeviceClass.ACCELERATOR, 1, "0000:af:00.0", "vfio-pci", "0d90")
    assert accel["0000:af:00.0"].index == -1


def test_virtio_net_nic_netdev_hangs_off_the_virtio_device(tree: SysfsTreeBuilder) -> None:
    tree.add_nic("0000:07:00.0", VIRTIO_NET, "eth1")
    assert (tree.sys / "bus/pci/devices/0000:07:00.0/virtio0/net/eth1").is_dir()
    (nic,) = SysfsReader(tree.root).inventory().others
    assert (nic.device_class, nic.netdev, nic.driver, nic.link_type) == (
        DeviceClass.NIC, "eth1", "virtio-pci", LinkType.ETHER)


def test_default_route_marks_the_device(tree: SysfsTreeBuilder) -> None:
    tree.add_nic("0000:07:00.0", VIRTIO_NET, "eth0")
    tree.add_nic("0000:08:00.0", VIRTIO_NET, "eth1")
    (tree.root / "proc/net").mkdir(parents=True)
    (tree.root / "proc/net/route").write_text(
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
        "eth0\t00000000\t0102A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
        "eth1\t0002A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n")
    devices = by_id(tree.root)
    assert devices["0000:07:00.0"].default_route and not devices["0000:08:00.0"].default_route


def test_single_vf_lookup_reads_the_same_facts(tree: SysfsTreeBuilder) -> None:
    vf0, _ = mlx(tree)
    tree.add_vdpa(vf0)
    assert SysfsReader(tree.root).vf(vf0) == by_id(tree.root)[vf0]


def test_remove_tree_removes_dev_nodes(tree: SysfsTreeBuilder) -> None:
    mlx(tree, vf_drivers={1: "vfio-pci"})
    tree.remove_tree()
    assert not (tree.root / "dev").exists() and not (tree.root / "sys").exists()


def test_shrinking_vfs_removes_their_rdma_char_devices(tree: SysfsTreeBuilder) -> None:
    mlx(tree)
    tree.set_num_vfs(PF, 0)
    assert sorted(p.name for p in (tree.root / "dev/infiniband").iterdir()) == [
        "issm0", "rdma_cm", "umad0", "uverbs0"]
    assert sorted(p.name for p in (tree.sys / "class/infiniband_verbs").iterdir()) == ["uverbs0"]


def test_device_lookup_by_id_for_every_class(tree: SysfsTreeBuilder) -> None:
    from sriov.errors import DeviceNotFoundError

    vf0, _ = mlx(tree)
    tree.add_pf(PfSpec(address="0000:5e:00.0", ifname="p1", profile=MELLANOX_BF2, num_vfs=0))
    tree.add_sf("0000:5e:00.0", 4, "p1s4")
    tree.add_nic("0000:07:00.0", VIRTIO_NET, "eth0")
    reader = SysfsReader(tree.root)
    assert reader.device(vf0) == reader.vf(vf0)
    assert reader.device("0000:07:00.0").device_class is DeviceClass.NIC
    assert reader.device("0000:5e:00.0").device_class is DeviceClass.NIC
    assert reader.device("mlx5_core.sf.0").netdev == "p1s4"
    for missing in (PF, "mlx5_core.sf.9", "0000:99:00.0"):  # a PF with VFs is no device
        with pytest.raises(DeviceNotFoundError):
            reader.device(missing)
