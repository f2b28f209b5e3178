"""Emulated layouts of the device classes beyond plain netdev VFs (helper of ``tree``).

Each function writes what the real kernel creates, under the builder's root, and the
``dev/`` node a driver would create (an empty file: the device plugin only checks that
the node exists). Layouts (Documentation/ABI/stable/sysfs-class-infiniband, sysfs-class-uio,
drivers/vdpa, drivers/vfio/vfio.c, include/linux/auxiliary_bus.h):

- RDMA, per device: ``<dev>/infiniband/<ibdev>/{node_type,ports/1/{state,link_layer,
  pkeys/0}}``; ``<dev>/infiniband_verbs/uverbsN/{ibdev,abi_version,dev}``;
  ``<dev>/infiniband_mad/{umadN,issmN}/{ibdev,port,dev}``; each linked from
  ``sys/class/{infiniband,infiniband_verbs,infiniband_mad}``; nodes
  ``dev/infiniband/{uverbsN,umadN,issmN}``; the misc device ``rdma_cm``
  (``sys/class/misc/rdma_cm``, ``dev/infiniband/rdma_cm``) once per host.
- uio: ``<dev>/uio/uioN/{name,version,dev}`` linked from ``sys/class/uio``; ``dev/uioN``.
- vfio no-IOMMU: ``sys/module/vfio/parameters/enable_unsafe_noiommu_mode`` = ``Y``; a
  vfio-pci device's group has ``name`` = ``vfio-noiommu``; node ``dev/vfio/noiommu-<G>``.
- vDPA: ``<dev>/vdpaN/{driver,subsystem}`` linked from ``sys/bus/vdpa/devices``; bound to
  vhost_vdpa it has the class device ``vhost-vdpa-M/`` (``sys/class/vhost-vdpa``) and
  ``dev/vhost-vdpa-M``.
- SF: ``<dev>/<drv>.sf.<id>/{sfnum,driver,subsystem,net/<if>/,infiniband/}`` linked from
  ``sys/bus/auxiliary/devices``; ``<id>`` is the auxiliary bus's own counter, not the sfnum.
- switchdev eswitch (``devlink dev eswitch set pci/<pf> mode switchdev``, mlx5): the PF's
  netdev becomes the uplink representor (``phys_port_name`` ``p<pfnum>``) and one VF
  representor netdev per VF appears next to it in ``<pf>/net/`` (``phys_port_name``
  ``pf<pfnum>vf<i>``); all share the eswitch's ``phys_switch_id``. Drivers without the
  attributes answer ``EOPNOTSUPP`` on read; here those files are simply absent.
"""

from __future__ import annotations

import os
import shutil
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from sriov import validate
from sriov.errors import EmulationError

if TYPE_CHECKING:
    from sriov.emulate.tree import SysfsTreeBuilder

NOIOMMU_PARAM = "module/vfio/parameters/enable_unsafe_noiommu_mode"
UVERBS_MAJOR, UMAD_MAJOR, UIO_MAJOR, VHOST_VDPA_MAJOR = 231, 231, 243, 511


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")


def symlink(link: Path, target: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(os.path.relpath(target, link.parent), link)


def unlink(path: Path) -> None:
    path.unlink(missing_ok=True)


def dev_node(tree: SysfsTreeBuilder, name: str) -> None:
    path = tree.root / "dev" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)


def next_number(directory: Path, prefix: str) -> int:
    names = os.listdir(directory) if directory.is_dir() else []
    nums = [int(n[len(prefix):]) for n in names
            if n.startswith(prefix) and n[len(prefix):].isdigit()]
    return max(nums, default=-1) + 1


# ------------------------------------------------------------------ RDMA
def add_rdma(tree: SysfsTreeBuilder, dev_dir: Path, prefix: str, *, infiniband: bool) -> str:
    """An RDMA device with one port and its char devices under ``dev_dir``; its name."""
    sys = tree.sys
    name = f"{prefix}{next_number(sys / 'class/infiniband', prefix)}"
    ib = dev_dir / "infiniband" / name
    write(ib / "node_type", "1: CA")
    write(ib / "ports/1/state", "4: ACTIVE")
    write(ib / "ports/1/link_layer", "InfiniBand" if infiniband else "Ethernet")
    write(ib / "ports/1/pkeys/0", "0xffff")
    symlink(sys / "class/infiniband" / name, ib)
    for class_dir, prefix_, major, extra in (
            ("infiniband_verbs", "uverbs", UVERBS_MAJOR, {"abi_version": "1"}),
            ("infiniband_mad", "umad", UMAD_MAJOR, {"port": "1"}),
            ("infiniband_mad", "issm", UMAD_MAJOR, {"port": "1"})):
        number = next_number(sys / "class" / class_dir, prefix_)
        char = f"{prefix_}{number}"
        cdir = dev_dir / class_dir / char
        write(cdir / "ibdev", name)
        write(cdir / "dev", f"{major}:{number}")
        for attr, value in extra.items():
            write(cdir / attr, value)
        symlink(sys / "class" / class_dir / char, cdir)
        dev_node(tree, f"infiniband/{char}")
    if not (sys / "class/infiniband_mad/abi_version").exists():
        write(sys / "class/infiniband_mad/abi_version", "5")
    if not (sys / "class/misc/rdma_cm").exists():
        misc = sys / "devices/virtual/misc/rdma_cm"
        write(misc / "dev", "10:58")
        symlink(sys / "class/misc/rdma_cm", misc)
        dev_node(tree, "infiniband/rdma_cm")
    return name


def remove_rdma(tree: SysfsTreeBuilder, dev_dir: Path) -> None:
    """Undo :func:`add_rdma` for every RDMA device under ``dev_dir``."""
    for name in _names(dev_dir / "infiniband"):
        unlink(tree.sys / "class/infiniband" / name)
    for class_dir in ("infiniband_verbs", "infiniband_mad"):
        for char in _names(dev_dir / class_dir):
            unlink(tree.sys / "class" / class_dir / char)
            unlink(tree.root / "dev/infiniband" / char)


# ------------------------------------------------------------------ uio
def add_uio(tree: SysfsTreeBuilder, dev_dir: Path, driver: str) -> None:
    number = next_number(tree.sys / "class/uio", "uio")
    udir = dev_dir / "uio" / f"uio{number}"
    write(udir / "name", driver)
    write(udir / "version", "0.01.0")
    write(udir / "dev", f"{UIO_MAJOR}:{number}")
    symlink(tree.sys / "class/uio" / f"uio{number}", udir)
    dev_node(tree, f"uio{number}")


def remove_uio(tree: SysfsTreeBuilder, dev_dir: Path) -> None:
    for name in _names(dev_dir / "uio"):
        unlink(tree.sys / "class/uio" / name)
        unlink(tree.root / "dev" / name)
    shutil.rmtree(dev_dir / "uio", ignore_errors=True)


# ------------------------------------------------------------------ vfio
def noiommu_mode(tree: SysfsTreeBuilder) -> bool:
    path = tree.sys / NOIOMMU_PARAM
    return path.exists() and path.read_text().strip() == "Y"


def set_noiommu_mode(tree: SysfsTreeBuilder, enabled: bool) -> None:
    write(tree.sys / NOIOMMU_PARAM, "Y" if enabled else "N")


def add_vfio_group(tree: SysfsTreeBuilder, group: str) -> None:
    """The nodes vfio creates when a device of ``group`` binds to vfio-pci."""
    dev_node(tree, "vfio/vfio")
    if noiommu_mode(tree):
        write(tree.sys / "kernel/iommu_groups" / group / "name", "vfio-noiommu")
        dev_node(tree, f"vfio/noiommu-{group}")
    else:
        dev_node(tree, f"vfio/{group}")


def remove_vfio_group(tree: SysfsTreeBuilder, group: str) -> None:
    unlink(tree.root / "dev/vfio" / group)
    unlink(tree.root / "dev/vfio" / f"noiommu-{group}")
    unlink(tree.sys / "kernel/iommu_groups" / group / "name")


# ------------------------------------------------------------------ vDPA
def add_vdpa(tree: SysfsTreeBuilder, dev_dir: Path, driver: str | None) -> str:
    """A vdpa bus device under ``dev_dir`` bound to ``driver``; its name (``vdpaN``)."""
    bus = tree.sys / "bus/vdpa"
    name = f"vdpa{next_number(bus / 'devices', 'vdpa')}"
    vdir = dev_dir / name
    vdir.mkdir(parents=True)
    symlink(vdir / "subsystem", bus)
    symlink(bus / "devices" / name, vdir)
    if driver is not None:
        (bus / "drivers" / driver).mkdir(parents=True, exist_ok=True)
        symlink(bus / "drivers" / driver / name, vdir)
        symlink(vdir / "driver", bus / "drivers" / driver)
    if driver == "vhost_vdpa":
        number = next_number(tree.sys / "class/vhost-vdpa", "vhost-vdpa-")
        char = f"vhost-vdpa-{number}"
        write(vdir / char / "dev", f"{VHOST_VDPA_MAJOR}:{number}")
        symlink(tree.sys / "class/vhost-vdpa" / char, vdir / char)
        dev_node(tree, char)
    return name


# ------------------------------------------------------------------ SF
def add_sf(tree: SysfsTreeBuilder, pf_dir: Path, driver: str, sfnum: int, ifname: str | None,
           *, rdma_prefix: str | None, mac: str, ifindex: int) -> str:
    """An SF (auxiliary device ``<driver>.sf.<id>``) of the PF at ``pf_dir``; its name."""
    bus = tree.sys / "bus/auxiliary"
    aux_id = next_number(bus / "devices", f"{driver}.sf.")
    name = f"{driver}.sf.{aux_id}"
    sdir = pf_dir / name
    write(sdir / "sfnum", str(sfnum))
    symlink(sdir / "subsystem", bus)
    symlink(bus / "devices" / name, sdir)
    drv = bus / "drivers" / f"{driver}.sf"
    drv.mkdir(parents=True, exist_ok=True)
    symlink(drv / name, sdir)
    symlink(sdir / "driver", drv)
    (sdir / "net").mkdir()
    if ifname is not None:
        tree.add_netdev_at(sdir, ifname, mac, ifindex)
    if rdma_prefix is not None:
        add_rdma(tree, sdir, rdma_prefix, infiniband=False)
    return name


# ------------------------------------------------------------------ switchdev
def set_switchdev(tree: SysfsTreeBuilder, pf_dir: Path, representors: Sequence[str],
                  *, mac: Callable[[int], str], ifindex: Callable[[], int]) -> None:
    """Put the PF at ``pf_dir`` (which has its netdev) in switchdev mode, with the VF
    representor netdevs ``representors`` (VF 0, 1, ...)."""
    netdevs = _names(pf_dir / "net")
    if len(netdevs) != 1:
        raise EmulationError(f"{pf_dir.name}: switchdev needs the PF's one netdev, "
                             f"found {netdevs or 'none'}")
    pfnum = int(pf_dir.name.rsplit(".", 1)[1])
    switch_id = f"{zlib.crc32(pf_dir.name[:-2].encode()):08x}00000000"  # per NIC, as the GUID
    uplink = pf_dir / "net" / netdevs[0]
    write(uplink / "phys_port_name", f"p{pfnum}")
    write(uplink / "phys_switch_id", switch_id)
    for vf, name in enumerate(representors):
        validate.ifname(name)
        if (tree.sys / "class/net" / name).is_symlink():
            raise EmulationError(f"netdev name {name} is already used")
        tree.add_netdev_at(pf_dir, name, mac(vf), ifindex())
        write(pf_dir / "net" / name / "phys_port_name", f"pf{pfnum}vf{vf}")
        write(pf_dir / "net" / name / "phys_switch_id", switch_id)


# ------------------------------------------------------------------ virtio
def add_virtio(tree: SysfsTreeBuilder, pci_dir: Path, driver: str) -> Path:
    """The virtio device under a virtio-pci function (``<pci>/virtioN``), bound to
    ``driver`` (``virtio_net``); the netdev of a virtio-net NIC lives below it."""
    bus = tree.sys / "bus/virtio"
    name = f"virtio{next_number(bus / 'devices', 'virtio')}"
    vdir = pci_dir / name
    vdir.mkdir(parents=True)
    write(vdir / "vendor", "0x1af4")
    write(vdir / "device", "0x0001")
    symlink(vdir / "subsystem", bus)
    symlink(bus / "devices" / name, vdir)
    (bus / "drivers" / driver).mkdir(parents=True, exist_ok=True)
    symlink(bus / "drivers" / driver / name, vdir)
    symlink(vdir / "driver", bus / "drivers" / driver)
    return vdir


def _names(directory: Path) -> list[str]:
    return sorted(os.listdir(directory)) if directory.is_dir() else []
