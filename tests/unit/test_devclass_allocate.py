"""Pools and Allocate answers for every device class, on emulated trees (no mocks of the
reader: the tree is what the kernel would show)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deviceplugin.allocation import allocate_container
from deviceplugin.cdi import cdi_spec
from deviceplugin.pool import build_devices
from deviceplugin.scanner import pool_spec, selector_options
from sriov.emulate.profiles import INTEL_N3000_FEC, MELLANOX_BF2, MELLANOX_CX5, VIRTIO_NET
from sriov.emulate.tree import PfSpec, SysfsTreeBuilder
from sriov.pools import PoolConfig, select
from sriov.sysfs import SysfsReader
from sriov.types import LinkType

PF = "0000:3b:00.0"


def allocate(root: Path, config: dict, pool: str, ids: list[str] | None = None,
             *, use_cdi: bool = False):
    """Select, build the pool like the device plugin does, allocate ``ids`` (all)."""
    cfg = PoolConfig.parse(config)
    selection = select(cfg, SysfsReader(root).inventory())
    resource = cfg.pool(pool)
    assert resource is not None
    spec = pool_spec(resource)
    devices = build_devices(spec, selection.pools[pool], lambda _: True,
                            selector_options(cfg, selection))
    chosen = [d for d in devices if ids is None or d.id in ids]
    alloc = allocate_container(spec, chosen, use_cdi=use_cdi, dev_root=root / "dev")
    return selection, alloc, cdi_spec(spec, devices, root / "dev")


def info(alloc, env: str) -> dict:
    return json.loads(alloc.envs[env + "_INFO"])


def nodes(alloc) -> list[tuple[str, str]]:
    return [(n.container_path, n.host_path) for n in alloc.devices]


@pytest.fixture
def bf2(tmp_path: Path) -> tuple[Path, list[str]]:
    tree = SysfsTreeBuilder(tmp_path)
    built = tree.add_pf(PfSpec(address=PF, ifname="p0", profile=MELLANOX_BF2, num_vfs=2,
                               vf_ifnames=("p0v0", "p0v1")))
    return tmp_path, list(built.vf_addresses)


def test_rdma_pool_hands_out_infiniband_nodes_info_and_device_info(bf2) -> None:
    root, (vf0, vf1) = bf2
    _, alloc, cdi = allocate(root, {"resourceList": [
        {"resourceName": "rdma", "resourcePrefix": "nvidia.com",
         "selectors": [{"vendors": ["15b3"], "isRdma": True}]}]}, "nvidia.com/rdma")
    # per device in provider order, de-duplicated by host path: rdma_cm once
    assert nodes(alloc) == [(p, p) for p in (
        "/dev/infiniband/issm1", "/dev/infiniband/umad1", "/dev/infiniband/uverbs1",
        "/dev/infiniband/rdma_cm",
        "/dev/infiniband/issm2", "/dev/infiniband/umad2", "/dev/infiniband/uverbs2")]
    assert info(alloc, "PCIDEVICE_NVIDIA_COM_RDMA")[vf0]["rdma"] == {
        "issm": "/dev/infiniband/issm1", "umad": "/dev/infiniband/umad1",
        "uverbs": "/dev/infiniband/uverbs1", "rdma_cm": "/dev/infiniband/rdma_cm",
        "rdma_dev": "mlx5_1"}
    devinfo = json.loads(alloc.device_info[f"nvidia.com-rdma-{vf1}-device.json"])
    assert devinfo == {"type": "pci", "version": "1.1.0",
                       "pci": {"pci-address": vf1, "rdma-device": "mlx5_2"}}
    (first,) = [d for d in cdi["devices"] if d["name"] == vf0]
    assert [n["path"] for n in first["containerEdits"]["deviceNodes"]][-1] == \
        "/dev/infiniband/rdma_cm"


def test_without_isrdma_an_rdma_vf_gets_no_rdma_nodes(bf2) -> None:
    root, (vf0, _) = bf2
    _, alloc, _ = allocate(root, {"resourceList": [
        {"resourceName": "net", "selectors": [{"vendors": ["15b3"]}]}]}, "intel.com/net")
    assert alloc.devices == ()
    assert set(info(alloc, "PCIDEVICE_INTEL_COM_NET")[vf0]) == {"generic"}
    assert json.loads(next(iter(alloc.device_info.values())))["pci"] == {"pci-address": vf0}


def test_isrdma_per_selector(bf2) -> None:
    root, (vf0, vf1) = bf2
    _, alloc, _ = allocate(root, {"resourceList": [{"resourceName": "mixed", "selectors": [
        {"pciAddresses": [vf0], "isRdma": True}, {"pciAddresses": [vf1]}]}]},
        "intel.com/mixed")
    got = info(alloc, "PCIDEVICE_INTEL_COM_MIXED")
    assert "rdma" in got[vf0] and "rdma" not in got[vf1]


def test_uio_pool(bf2) -> None:
    root, (vf0, _) = bf2
    SysfsTreeBuilder(root).bind_vf_driver(vf0, "igb_uio")
    _, alloc, _ = allocate(root, {"resourceList": [
        {"resourceName": "dpdk", "selectors": [{"drivers": ["igb_uio"]}]}]}, "intel.com/dpdk")
    assert nodes(alloc) == [("/dev/uio0", "/dev/uio0")]
    assert info(alloc, "PCIDEVICE_INTEL_COM_DPDK")[vf0]["uio"] == {"mount": "/dev/uio0"}


def test_vfio_noiommu_host_and_container_paths(tmp_path: Path) -> None:
    tree = SysfsTreeBuilder(tmp_path)
    tree.set_noiommu_mode(True)
    built = tree.add_pf(PfSpec(address=PF, ifname="p0", num_vfs=1, vf_drivers={0: "vfio-pci"}))
    (vf0,) = built.vf_addresses
    group = SysfsReader(tmp_path).vf(vf0).iommu_group
    _, alloc, cdi = allocate(tmp_path, {"resourceList": [
        {"resourceName": "dpdk", "selectors": [{"drivers": ["vfio-pci"]}]}]}, "intel.com/dpdk")
    assert nodes(alloc) == [("/dev/vfio/vfio", "/dev/vfio/vfio"),
                            (f"/dev/vfio/{group}", f"/dev/vfio/noiommu-{group}")]
    assert info(alloc, "PCIDEVICE_INTEL_COM_DPDK")[vf0]["vfio"] == {
        "mount": "/dev/vfio/vfio", "dev-mount": f"/dev/vfio/{group}"}
    edit = cdi["devices"][0]["containerEdits"]["deviceNodes"][1]
    assert edit == {"path": f"/dev/vfio/{group}", "hostPath": f"/dev/vfio/noiommu-{group}",
                    "permissions": "rw"}


def test_vdpa_vhost_pool(bf2) -> None:
    root, (vf0, vf1) = bf2
    tree = SysfsTreeBuilder(root)
    tree.add_vdpa(vf0, "vhost_vdpa")
    tree.add_vdpa(vf1, "virtio_vdpa")
    config = {"resourceList": [
        {"resourceName": "vhost", "selectors": [{"vdpaType": "vhost"}]},
        {"resourceName": "virtio", "selectors": [{"vdpaType": "virtio"}]}]}
    selection, alloc, _ = allocate(root, config, "intel.com/vhost")
    assert [d.id for d in selection.pools["intel.com/vhost"]] == [vf0]
    assert [d.id for d in selection.pools["intel.com/virtio"]] == [vf1]
    assert nodes(alloc) == [("/dev/vhost-vdpa-0", "/dev/vhost-vdpa-0")]
    assert info(alloc, "PCIDEVICE_INTEL_COM_VHOST")[vf0]["vdpa"] == {
        "mount": "/dev/vhost-vdpa-0"}
    assert json.loads(alloc.device_info[f"intel.com-vhost-{vf0}-device.json"]) == {
        "type": "vdpa", "version": "1.1.0",
        "vdpa": {"parent-device": "vdpa0", "driver": "vhost", "path": "/dev/vhost-vdpa-0",
                 "pci-address": vf0}}
    _, virtio, _ = allocate(root, config, "intel.com/virtio")
    assert virtio.devices == ()
    assert json.loads(virtio.device_info[f"intel.com-virtio-{vf1}-device.json"])["vdpa"] == {
        "parent-device": "vdpa1", "driver": "virtio", "pci-address": vf1}


def test_accelerator_pool(tmp_path: Path) -> None:
    tree = SysfsTreeBuilder(tmp_path)
    built = tree.add_pf(PfSpec(address="0000:af:00.0", ifname=None, profile=INTEL_N3000_FEC,
                               num_vfs=2))
    tree.add_pf(PfSpec(address=PF, ifname="p0", num_vfs=1, vf_drivers={0: "vfio-pci"}))
    selection, alloc, cdi = allocate(tmp_path, {"resourceList": [
        {"resourceName": "intel_fpga", "deviceType": "accelerator",
         "selectors": [{"vendors": ["8086"], "devices": ["0d90"]}]},
        {"resourceName": "dpdk", "selectors": [{"drivers": ["vfio-pci"]}]}]},
        "intel.com/intel_fpga", use_cdi=True)
    assert [d.id for d in selection.pools["intel.com/intel_fpga"]] == list(built.vf_addresses)
    assert len(selection.pools["intel.com/dpdk"]) == 1  # the network VF, not the FEC VFs
    assert nodes(alloc)[0] == ("/dev/vfio/vfio", "/dev/vfio/vfio") and len(alloc.devices) == 3
    assert alloc.device_info == {}  # upstream writes device-info for netDevice pools only
    assert alloc.cdi_devices[0] == f"intel.com/net-accel={built.vf_addresses[0]}"
    assert cdi["kind"] == "intel.com/net-accel"


def test_aux_sf_pool(tmp_path: Path) -> None:
    tree = SysfsTreeBuilder(tmp_path)
    tree.add_pf(PfSpec(address=PF, ifname="p0", profile=MELLANOX_BF2, num_vfs=0))
    for sfnum in (0, 1, 2):
        tree.add_sf(PF, sfnum, f"p0s{sfnum}")
    selection, alloc, cdi = allocate(tmp_path, {"resourceList": [
        {"resourceName": "bf2_sf", "resourcePrefix": "nvidia.com", "deviceType": "auxNetDevice",
         "selectors": [{"vendors": ["15b3"], "devices": ["a2d6"], "auxTypes": ["sf"],
                        "pfNames": ["p0#1-2"], "isRdma": True}]}]}, "nvidia.com/bf2_sf",
        use_cdi=True)
    ids = ["mlx5_core.sf.1", "mlx5_core.sf.2"]
    assert [d.id for d in selection.pools["nvidia.com/bf2_sf"]] == ids
    assert alloc.envs["PCIDEVICE_NVIDIA_COM_BF2_SF"] == ",".join(ids)
    got = info(alloc, "PCIDEVICE_NVIDIA_COM_BF2_SF")
    assert got[ids[0]]["generic"] == {"deviceID": ids[0]}
    assert got[ids[0]]["rdma"]["rdma_dev"] == "mlx5_2"
    assert alloc.cdi_devices == tuple(f"nvidia.com/net-sf={i}" for i in ids)
    assert cdi["kind"] == "nvidia.com/net-sf" and alloc.device_info == {}
    assert any(p == "/dev/infiniband/uverbs2" for _, p in nodes(alloc))


def test_netdevice_pool_takes_nics_without_vfs_but_not_pfs_with_vfs(tmp_path: Path) -> None:
    tree = SysfsTreeBuilder(tmp_path)
    tree.add_pf(PfSpec(address=PF, ifname="p0", num_vfs=1, vf_ifnames=("p0v0",)))
    tree.add_pf(PfSpec(address="0000:5e:00.0", ifname="p1", num_vfs=0))
    tree.add_nic("0000:07:00.0", VIRTIO_NET, "eth0")
    tree.add_nic("0000:08:00.0", VIRTIO_NET, "eth1")
    (tmp_path / "proc/net").mkdir(parents=True)
    (tmp_path / "proc/net/route").write_text(
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
        "eth0\t00000000\t0102A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n")
    selection, alloc, _ = allocate(tmp_path, {"resourceList": [
        {"resourceName": "all", "selectors": [{}]}]}, "intel.com/all")
    assert [d.id for d in selection.pools["intel.com/all"]] == [
        "0000:08:00.0", "0000:3b:02.0", "0000:5e:00.0"]
    assert "default route" in selection.reasons["0000:07:00.0"]
    # upstream: pfNames/rootDevices drop devices that are not VFs
    sel = select(PoolConfig.parse({"resourceList": [
        {"resourceName": "p1", "selectors": [{"rootDevices": ["0000:5e:00.0"]}]}]}),
        SysfsReader(tmp_path).inventory())
    assert sel.pools["intel.com/p1"] == ()
    assert json.loads(alloc.device_info["intel.com-all-0000:08:00.0-device.json"])["pci"] == {
        "pci-address": "0000:08:00.0"}


def test_acpi_index_and_pkey_selectors(tmp_path: Path) -> None:
    tree = SysfsTreeBuilder(tmp_path)
    built = tree.add_pf(PfSpec(address=PF, ifname="ib0", profile=MELLANOX_CX5, num_vfs=2,
                               vf_ifnames=("ib0v0", "ib0v1"), link_type=LinkType.INFINIBAND))
    vf0, vf1 = built.vf_addresses
    vf1_dir = (tmp_path / "sys/bus/pci/devices" / vf1).resolve()
    (vf1_dir / "acpi_index").write_text("7\n")
    next(vf1_dir.glob("infiniband/*/ports/1/pkeys/0")).write_text("0x8001\n")
    sel = select(PoolConfig.parse({"resourceList": [
        {"resourceName": "acpi", "selectors": [{"acpiIndexes": ["7"]}]},
        {"resourceName": "pkey", "selectors": [{"pKeys": ["0xffff"]}]}]}),
        SysfsReader(tmp_path).inventory())
    assert [d.id for d in sel.pools["intel.com/acpi"]] == [vf1]
    assert [d.id for d in sel.pools["intel.com/pkey"]] == [vf0]


def test_missing_rdma_char_device_is_left_out(bf2) -> None:
    root, (vf0, _) = bf2
    (root / "dev/infiniband/umad1").unlink()
    _, alloc, _ = allocate(root, {"resourceList": [
        {"resourceName": "rdma", "selectors": [{"isRdma": True}]}]}, "intel.com/rdma", [vf0])
    assert "/dev/infiniband/umad1" not in [p for _, p in nodes(alloc)]
    assert alloc.missing_nodes == ("/dev/infiniband/umad1",)
