"""Per-class facts and non-VF devices for :class:`sriov.sysfs.SysfsReader` (pure reads).

- :class:`ClassContext`: indexes built once per scan (RDMA char devices by ``ibdev``,
  vdpa devices by parent, netdevs with an IPv4 default route) and :meth:`facts` for one
  device directory: RDMA devices, uio node, vfio no-IOMMU, vDPA, ``acpi_index``, pKey.
- :func:`nic`, :func:`accelerator`, :func:`aux_sfs`: the devices upstream pools besides
  VFs of network PFs (non-SR-IOV NICs and PFs with 0 VFs, class 0x12 functions, SFs).

Default route: upstream asks netlink for each netdev's IPv4 routes in the main table
and excludes a device when one has no destination. We read the same table from
``<root>/proc/net/route`` (destination and mask ``00000000``), which keeps discovery a
pure file read; IPv6 is not checked (as upstream). On an emulated root without
``proc/net/route`` nothing is excluded.
"""

from __future__ import annotations

import functools
import os
import re
from typing import Any

from sriov import validate
from sriov.devclass import _fs, rdma, uio, vdpa, vfio
from sriov.types import (
    DeviceClass,
    IfName,
    LinkType,
    PciAddress,
    VirtualFunction,
)

ACCELERATOR_CLASS = 0x12
_AUX_NAME = re.compile(r"^([A-Za-z0-9_]+)\.([a-z]+)\.([0-9]+)$")


def default_route_netdevs(root: str) -> frozenset[str]:
    """Netdevs with an IPv4 default route in the main table (``/proc/net/route``)."""
    text = _fs.read(os.path.join(root, "proc", "net", "route")) or ""
    found = set()
    for line in text.splitlines()[1:]:
        cols = line.split()
        if len(cols) >= 8 and cols[1] == "00000000" and cols[7] == "00000000":
            found.add(cols[0])
    return frozenset(found)


class ClassContext:
    """Indexes shared by every device of one scan, each built on first use (a single-VF
    lookup in the CNI's path reads only what that VF needs)."""

    def __init__(self, root: str) -> None:
        self._root = root
        self._sys = os.path.join(root, "sys")

    @functools.cached_property
    def chars(self) -> rdma.CharIndex:
        return rdma.CharIndex(self._sys)

    @functools.cached_property
    def vdpa_index(self) -> vdpa.VdpaIndex:
        return vdpa.VdpaIndex(self._sys)

    @functools.cached_property
    def default_routes(self) -> frozenset[str]:
        return default_route_netdevs(self._root)

    def facts(self, name: str, dev: str, netdevs: tuple[str, ...], link_type: LinkType,
              driver: str | None) -> dict[str, Any]:
        """The class fields of :class:`~sriov.types.VirtualFunction` for one device dir
        (driver-specific files are read only for that driver: discovery stays cheap)."""
        rdma_devices = rdma.discover(dev, self) if os.path.isdir(
            os.path.join(dev, "infiniband")) else ()
        return {
            "rdma_devices": rdma_devices,
            "uio_device": uio.discover(dev) if driver in uio.DRIVERS else None,
            "noiommu": vfio.discover_noiommu(dev) if driver in vfio.DRIVERS else False,
            "vdpa": self.vdpa_index.of(name),
            "acpi_index": _fs.read(os.path.join(dev, "acpi_index")),
            "pkey": rdma.discover_pkey(dev) if link_type is LinkType.INFINIBAND else None,
            "default_route": bool(netdevs) and any(n in self.default_routes for n in netdevs),
        }


def _hex(dev: str, attr: str) -> str | None:
    raw = _fs.read(os.path.join(dev, attr)) or ""
    return raw[2:].lower() if re.fullmatch(r"0x[0-9a-fA-F]{4}", raw) else None


def _numa(dev: str) -> int | None:
    raw = _fs.read(os.path.join(dev, "numa_node"))
    try:
        node = int(raw or "-1")
    except ValueError:
        return None
    return None if node < 0 else node


def net_dir(dev: str) -> str:
    """Where a function's netdevs are listed: ``<dev>/net``, or for virtio-net (whose
    netdev hangs off the virtio device) ``<dev>/virtioN/net``."""
    own = os.path.join(dev, "net")
    if os.path.isdir(own):
        return own
    for name in _fs.entries(dev):
        if name.startswith("virtio") and os.path.isdir(os.path.join(dev, name, "net")):
            return os.path.join(dev, name, "net")
    return own


def _link_type(net: str, netdevs: tuple[str, ...], pci_class: int) -> LinkType:
    if netdevs:
        try:
            return LinkType.from_arphrd(int(_fs.read(
                os.path.join(net, netdevs[0], "type")) or "-1"))
        except ValueError:
            return LinkType.UNKNOWN
    return LinkType.INFINIBAND if pci_class >> 8 == 0x0207 else LinkType.UNKNOWN


def _group(dev: str) -> int | None:
    group = _fs.link_name(os.path.join(dev, "iommu_group"))
    return int(group) if group and group.isdigit() else None


def pci_device(ctx: ClassContext, name: PciAddress, dev: str, pci_class: int,
               device_class: DeviceClass, *, pf_address: PciAddress | None = None,
               index: int = -1, pf_netdev: IfName | None = None) -> VirtualFunction | None:
    """A NIC or accelerator function as a pool device; ``None`` when its IDs are unreadable."""
    vendor, device = _hex(dev, "vendor"), _hex(dev, "device")
    if vendor is None or device is None:
        return None
    net = net_dir(dev)
    netdevs = tuple(_fs.entries(net))
    link_type = _link_type(net, netdevs, pci_class)
    driver = _fs.link_name(os.path.join(dev, "driver"))
    facts = ctx.facts(name, dev, netdevs, link_type, driver)
    return VirtualFunction(
        address=name, index=index, pf_address=pf_address or name, pf_netdev=pf_netdev,
        vendor_id=vendor, device_id=device, driver=driver,
        netdev=IfName(netdevs[0]) if netdevs else None, iommu_group=_group(dev),
        numa_node=_numa(dev), is_rdma=bool(facts["rdma_devices"]), link_type=link_type,
        device_class=device_class, **facts)


def virtfn_index(pf_dir: str, vf_name: str) -> int:
    """The ``virtfnN`` of ``pf_dir`` that points at ``vf_name`` (-1 if none)."""
    for entry in _fs.entries(pf_dir):
        if entry.startswith("virtfn") and entry[6:].isdigit() and \
                _fs.link_name(os.path.join(pf_dir, entry)) == vf_name:
            return int(entry[6:])
    return -1


def aux_sfs(ctx: ClassContext, root: str, parents: dict[str, Any],
            pf_netdevs: dict[str, IfName | None]) -> list[VirtualFunction]:
    """Auxiliary devices ``<drv>.<type>.<n>`` with a ``net/`` dir under a network PCI parent.

    ``parents``: PCI address -> a record (PF or device) carrying the parent's IDs, driver
    and NUMA node, which the SF inherits (as upstream).
    """
    bus = os.path.join(root, "sys", "bus", "auxiliary", "devices")
    found: list[VirtualFunction] = []
    for name in _fs.entries(bus):
        if not _AUX_NAME.match(name):
            continue
        path = os.path.realpath(os.path.join(bus, name))
        if not os.path.isdir(os.path.join(path, "net")):
            continue
        parent_addr = _nearest_pci(path)
        parent = parents.get(parent_addr) if parent_addr else None
        if parent is None or parent_addr is None:
            continue
        sfnum = _fs.read(os.path.join(path, "sfnum"))
        netdevs = tuple(_fs.entries(os.path.join(path, "net")))
        link_type = _link_type(os.path.join(path, "net"), netdevs, 0x0200)
        rdma_devices = rdma.discover(path, ctx)
        found.append(VirtualFunction(
            address=PciAddress(parent_addr), index=int(sfnum) if sfnum and sfnum.isdigit()
            else -1, pf_address=PciAddress(parent_addr), pf_netdev=pf_netdevs.get(parent_addr),
            vendor_id=parent.vendor_id, device_id=parent.device_id, driver=parent.driver,
            netdev=IfName(netdevs[0]) if netdevs else None, iommu_group=None,
            numa_node=parent.numa_node, is_rdma=bool(rdma_devices), link_type=link_type,
            device_class=DeviceClass.AUX_SF, aux_name=name, rdma_devices=rdma_devices))
    return found


def _nearest_pci(path: str) -> str | None:
    """The nearest PCI-address ancestor directory of a resolved sysfs path."""
    while path and path != os.path.dirname(path):
        path = os.path.dirname(path)
        if validate.is_pci_address(os.path.basename(path)):
            return os.path.basename(path)
    return None
