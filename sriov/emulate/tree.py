"""Pure on-disk builder of an emulated SR-IOV sysfs tree (no netdevs, no root needed).

Everything is written under a chosen ``root`` directory and mirrors the real kernel
layout, so :class:`sriov.sysfs.SysfsReader` reads it exactly like ``/sys``::

    sys/devices/pci0000:3a/0000:3a:00.0/                 root port (bridge, class 0x060400)
    sys/devices/pci0000:3a/0000:3a:00.0/0000:3b:00.0/    PF: vendor device class numa_node
        sriov_{totalvfs,numvfs,offset,stride,vf_device} driver -> ../../../../bus/pci/drivers/i40e
        iommu_group -> ../../../../kernel/iommu_groups/N  virtfnK -> ../0000:3b:02.0
        net/<if>/{address,mtu,type,carrier,operstate,ifindex,...}   infiniband/mlx5_N/ (RDMA)
    sys/devices/pci0000:3a/0000:3a:00.0/0000:3b:02.0/    VF: physfn -> ../0000:3b:00.0, ...
    sys/bus/pci/devices/<bdf> -> ../../../devices/pci0000:3a/0000:3a:00.0/<bdf>
    sys/bus/pci/drivers/<drv>/<bdf> -> device;  sys/class/net/<if> -> device net/<if>
    sys/kernel/iommu_groups/N/devices/<bdf> -> device;  dev/vfio/N (vfio-pci bound VFs)

The state lives only on disk: a new builder on the same root can change a tree that
another process built (``sriovctl emulate`` relies on that). VF netdevs follow the
kernel's rules: a VF bound to vfio-pci has no ``net/`` directory; a VF whose netdev
moved to another netns has an empty ``net/`` directory.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path

from sriov import validate
from sriov.emulate import classes
from sriov.emulate.profiles import INTEL_X710, NicProfile, profile_for_vf
from sriov.errors import EmulationError
from sriov.types import DriverKind, IfName, LinkType, PciAddress

log = logging.getLogger(__name__)

DEFAULT_MTU = 1500
NETWORK_CLASS = 0x02
_ARPHRD = {LinkType.ETHER: 1, LinkType.INFINIBAND: 32}


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class PfSpec:
    """One emulated PF and the VFs it starts with. Validated on construction."""

    address: str
    ifname: str | None
    """PF netdev name; ``None`` builds a PF without a netdev."""
    profile: NicProfile = INTEL_X710
    num_vfs: int = 0
    total_vfs: int | None = None
    """``sriov_totalvfs``; ``None`` takes the profile's ``max_vfs``."""
    numa_node: int = -1
    """-1 = no NUMA topology, as the kernel reports it."""
    mtu: int = DEFAULT_MTU
    mac: str | None = None
    """PF MAC; ``None`` derives a stable locally administered one from the address."""
    link_type: LinkType | None = None
    """``None`` takes the profile's link type."""
    vf_ifnames: tuple[str | None, ...] | None = None
    """Netdev name per VF index; ``None`` builds VFs without netdevs (big benchmark trees)."""
    vf_drivers: Mapping[int, str | None] = dataclasses.field(default_factory=dict)
    """Driver override per VF index, e.g. ``{3: "vfio-pci"}``; ``None`` = unbound."""
    vf_addresses: tuple[str, ...] | None = None
    """Explicit VF addresses by index (tests); ``None`` follows ``sriov_offset/stride``."""

    def __post_init__(self) -> None:
        validate.pci_address(self.address)
        if self.ifname is not None:
            validate.ifname(self.ifname)
        total = self.effective_total_vfs
        if not 0 <= total <= 0xFFFF:
            raise EmulationError(f"total_vfs {total} out of range 0..65535")
        if not 0 <= self.num_vfs <= total:
            raise EmulationError(f"num_vfs {self.num_vfs} out of range 0..{total} (total_vfs)")
        if self.vf_ifnames is not None:
            if len(self.vf_ifnames) != self.num_vfs:
                raise EmulationError(
                    f"vf_ifnames has {len(self.vf_ifnames)} names for {self.num_vfs} VFs")
            for name in self.vf_ifnames:
                if name is not None:
                    validate.ifname(name)
        if self.vf_addresses is not None:
            if len(self.vf_addresses) < self.num_vfs:
                raise EmulationError(
                    f"vf_addresses has {len(self.vf_addresses)} entries for {self.num_vfs} VFs")
            for addr in self.vf_addresses:
                validate.pci_address(addr)

    @property
    def effective_total_vfs(self) -> int:
        return self.profile.max_vfs if self.total_vfs is None else self.total_vfs


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class BuiltPf:
    """What :meth:`SysfsTreeBuilder.add_pf` created."""

    address: PciAddress
    ifname: IfName | None
    path: Path
    """The PF's device directory under ``sys/devices``."""
    vf_addresses: tuple[PciAddress, ...]
    """VF addresses by index."""
    vf_netdevs: tuple[IfName | None, ...]


def mac_for(address: str, salt: int = 0) -> str:
    """A stable, unique, locally administered unicast MAC derived from a PCI address."""
    dom, bus, devfn = _split(address)
    return (f"02:{salt & 0xFF:02x}:{dom >> 8:02x}:{dom & 0xFF:02x}:"
            f"{bus:02x}:{devfn:02x}")


def _split(address: str) -> tuple[int, int, int]:
    dom, bus, rest = address.split(":")
    dev, fn = rest.split(".")
    return int(dom, 16), int(bus, 16), (int(dev, 16) << 3) | int(fn)


def _address(domain: int, rid: int) -> PciAddress:
    return PciAddress(f"{domain:04x}:{rid >> 8:02x}:{(rid >> 3) & 0x1F:02x}.{rid & 7}")


class SysfsTreeBuilder:
    """Builds and changes an emulated sysfs tree under ``root`` (never the real ``/sys``)."""

    def __init__(self, root: Path) -> None:
        root = Path(root)
        if root.resolve() == Path("/"):
            raise EmulationError("refusing to build an emulated sysfs tree over the real /")
        self.root = root
        self.sys = root / "sys"

    # ----------------------------------------------------------------- building
    def add_pf(self, spec: PfSpec) -> BuiltPf:
        """Create a PF (and ``spec.num_vfs`` VFs) shaped like ``spec.profile``."""
        addr = validate.pci_address(spec.address)
        if (self.sys / "bus/pci/devices" / addr).is_symlink():
            raise EmulationError(f"PCI device {addr} already exists in {self.root}")
        prof = spec.profile
        total = spec.effective_total_vfs
        link_type = spec.link_type or prof.link_type
        dom, bus, devfn = _split(addr)
        parent = self._bridge(dom, bus)
        pf_dir = parent / addr
        group = self._next_number(self.sys / "kernel/iommu_groups")
        self._add_device(pf_dir, addr, prof.vendor_id, prof.pf_device_id, prof.pci_class,
                         spec.numa_node, prof.pf_driver, group)
        attrs = {
            "sriov_totalvfs": total, "sriov_numvfs": 0,
            "sriov_offset": prof.offset_for(devfn & 7, total), "sriov_stride": prof.vf_stride,
            "sriov_vf_device": prof.vf_device_id, "sriov_drivers_autoprobe": 1,
        }
        for name, value in attrs.items():
            _write(pf_dir / name, str(value))
        if prof.rdma:
            classes.add_rdma(self, pf_dir, prof.rdma_prefix,
                             infiniband=link_type is LinkType.INFINIBAND)
        if int(prof.pci_class, 16) >> 16 == NETWORK_CLASS:
            (pf_dir / "net").mkdir()
        if spec.ifname is not None:
            self._add_netdev(pf_dir, spec.ifname, spec.mac or mac_for(addr), spec.mtu,
                             link_type, self._next_ifindex())
        vfs = self._create_vfs(pf_dir, range(spec.num_vfs), profile=prof,
                               ifnames=spec.vf_ifnames, drivers=spec.vf_drivers,
                               addresses=spec.vf_addresses)
        return BuiltPf(address=addr, ifname=IfName(spec.ifname) if spec.ifname else None,
                       path=pf_dir, vf_addresses=tuple(vfs),
                       vf_netdevs=tuple(IfName(n) if n else None
                                        for n in spec.vf_ifnames or (None,) * spec.num_vfs))

    def set_num_vfs(self, pf_address: str, count: int,
                    vf_ifnames: Iterable[str | None] | None = None) -> tuple[PciAddress, ...]:
        """Grow or shrink the PF's VFs to ``count``; returns all VF addresses by index.

        ``vf_ifnames`` names the netdevs of the *new* VFs only (default: no netdevs).
        """
        pf_dir = self._device_dir(pf_address)
        total = int(_read(pf_dir / "sriov_totalvfs"))
        current = int(_read(pf_dir / "sriov_numvfs"))
        if not 0 <= count <= total:
            raise EmulationError(f"{pf_address}: {count} VFs out of range 0..{total}")
        for index in range(count, current):
            self._remove_vf(pf_dir, index)
        profile = profile_for_vf(_read(pf_dir / "vendor")[2:], _read(pf_dir / "sriov_vf_device"))
        names = tuple(vf_ifnames) if vf_ifnames is not None else None
        self._create_vfs(pf_dir, range(current, count), profile=profile,
                         ifnames=names, drivers={}, addresses=None)
        _write(pf_dir / "sriov_numvfs", str(count))
        return tuple(PciAddress(os.path.basename(os.readlink(pf_dir / f"virtfn{i}")))
                     for i in range(count))

    def set_netdev(self, address: str, ifname: str | None, *, mac: str | None = None,
                   mtu: int | None = None, ifindex: int | None = None) -> None:
        """Give a PF/VF the netdev ``ifname`` (create or rename), or ``None`` to empty ``net/``.

        ``None`` is what the host sees when the netdev moved to another netns.
        """
        dev_dir = self._device_dir(address)
        net = dev_dir / "net"
        if ifname is not None:
            validate.ifname(ifname)
            if not net.is_dir():
                raise EmulationError(f"{address} has no net/ (bound to a non-netdev driver)")
            other = self.sys / "class/net" / ifname
            if other.is_symlink() and Path(os.path.realpath(other)).parent != net.resolve():
                raise EmulationError(f"netdev name {ifname} is already used by another device")
        existing = sorted(os.listdir(net)) if net.is_dir() else []
        if ifname is not None and existing == [ifname]:
            self._update_netdev(net / ifname, mac, mtu, ifindex)
            return
        if ifname is not None and len(existing) == 1:
            os.rename(net / existing[0], net / ifname)
            _unlink(self.sys / "class/net" / existing[0])
            _symlink(self.sys / "class/net" / ifname, net / ifname)
            self._update_netdev(net / ifname, mac, mtu, ifindex)
            return
        for name in existing:
            self._remove_netdev(net, name)
        if ifname is not None:
            pf_net = _pf_netdev_dir(dev_dir)
            link_type = _link_type_of(pf_net) if pf_net else LinkType.ETHER
            default_mtu = int(_read(pf_net / "mtu")) if pf_net else DEFAULT_MTU
            self._add_netdev(dev_dir, ifname, mac or mac_for(address, 1), mtu or default_mtu,
                             link_type, ifindex or self._next_ifindex())

    set_vf_netdev = set_netdev

    def bind_vf_driver(self, vf_address: str, driver: str | None, *,
                       ifname: str | None = None) -> None:
        """Rebind a VF like ``driver_override`` + ``bind`` would (``None`` = unbind).

        Leaving a netdev driver removes ``net/``; binding vfio-pci creates
        ``dev/vfio/<group>``; binding a netdev driver creates ``net/`` (with ``ifname``).
        """
        dev_dir = self._device_dir(vf_address)
        addr = dev_dir.name
        group = os.path.basename(os.readlink(dev_dir / "iommu_group"))
        old = dev_dir / "driver"
        if old.is_symlink():
            old_driver = os.path.basename(os.readlink(old))
            _unlink(self.sys / "bus/pci/drivers" / old_driver / addr)
            old.unlink()
            if DriverKind.of(old_driver) is DriverKind.VFIO:
                classes.remove_vfio_group(self, group)
            classes.remove_uio(self, dev_dir)
        if (dev_dir / "net").is_dir():
            for name in os.listdir(dev_dir / "net"):
                self._remove_netdev(dev_dir / "net", name)
            (dev_dir / "net").rmdir()
        if driver is None:
            return
        self._bind(dev_dir, driver)
        if DriverKind.of(driver) is DriverKind.VFIO:
            classes.add_vfio_group(self, group)
        elif DriverKind.of(driver) is DriverKind.UIO:
            classes.add_uio(self, dev_dir, driver)
        elif DriverKind.of(driver) is DriverKind.KERNEL:
            (dev_dir / "net").mkdir()
            if ifname is not None:
                self.set_netdev(addr, ifname)

    def set_carrier(self, ifname: str, up: bool) -> None:
        """Write ``carrier`` and ``operstate`` of a netdev in the tree."""
        link = self.sys / "class/net" / ifname
        if not link.is_symlink():
            raise EmulationError(f"no netdev {ifname!r} in the emulated tree {self.root}")
        _write(link / "carrier", "1" if up else "0")
        _write(link / "operstate", "up" if up else "down")

    def remove_tree(self) -> None:
        """Delete ``sys/`` and the emulated ``dev/`` nodes under the root (the root stays)."""
        shutil.rmtree(self.sys, ignore_errors=True)
        shutil.rmtree(self.root / "dev", ignore_errors=True)

    # ----------------------------------------------------------------- other classes
    def set_noiommu_mode(self, enabled: bool) -> None:
        """``vfio.enable_unsafe_noiommu_mode``: later vfio-pci binds get no-IOMMU groups."""
        classes.set_noiommu_mode(self, enabled)

    def add_vdpa(self, address: str, driver: str | None = "vhost_vdpa") -> str:
        """A vDPA device of the PCI function ``address`` (``vhost_vdpa``/``virtio_vdpa``)."""
        return classes.add_vdpa(self, self._device_dir(address), driver)

    def add_sf(self, pf_address: str, sfnum: int, ifname: str | None, *,
               driver: str = "mlx5_core", rdma_prefix: str | None = "mlx5_") -> str:
        """A subfunction of a PF (what ``devlink port add ... flavour pcisf`` + activate
        creates); returns its auxiliary device name."""
        if ifname is not None:
            validate.ifname(ifname)
            if (self.sys / "class/net" / ifname).is_symlink():
                raise EmulationError(f"netdev name {ifname} is already used")
        pf_dir = self._device_dir(pf_address)
        return classes.add_sf(self, pf_dir, driver, sfnum, ifname, rdma_prefix=rdma_prefix,
                              mac=mac_for(pf_address, 0x80 + sfnum % 0x80),
                              ifindex=self._next_ifindex())

    def set_switchdev(self, pf_address: str, representors: Iterable[str] = ()) -> None:
        """Switch the PF's eswitch to switchdev mode: its netdev becomes the uplink
        representor, and ``representors`` are the VF representor netdevs (VF 0, 1, ...)."""
        classes.set_switchdev(self, self._device_dir(pf_address), tuple(representors),
                              mac=lambda vf: mac_for(pf_address, 0x40 + vf % 0x40),
                              ifindex=self._next_ifindex)

    def add_nic(self, address: str, profile: NicProfile, ifname: str | None, *,
                numa_node: int = -1, mtu: int = DEFAULT_MTU) -> Path:
        """A network PCI function without SR-IOV (a VM's virtio-net NIC, a passed-through
        NIC). virtio: the netdev hangs off the virtio device, ``<pci>/virtioN/net/<if>``,
        as in a real guest; others: ``<pci>/net/<if>``."""
        addr = validate.pci_address(address)
        if (self.sys / "bus/pci/devices" / addr).is_symlink():
            raise EmulationError(f"PCI device {addr} already exists in {self.root}")
        dom, bus, _ = _split(addr)
        dev_dir = self._bridge(dom, bus) / addr
        group = self._next_number(self.sys / "kernel/iommu_groups")
        self._add_device(dev_dir, addr, profile.vendor_id, profile.pf_device_id,
                         profile.pci_class, numa_node, profile.pf_driver, group)
        parent = dev_dir
        if profile.pf_driver == "virtio-pci":
            parent = classes.add_virtio(self, dev_dir, "virtio_net")
        (parent / "net").mkdir()
        if ifname is not None:
            self._add_netdev(parent, ifname, mac_for(addr), mtu, profile.link_type,
                             self._next_ifindex())
        return dev_dir

    def add_netdev_at(self, dev_dir: Path, ifname: str, mac: str, ifindex: int) -> None:
        """A netdev under any device directory (SFs, virtio devices)."""
        self._add_netdev(dev_dir, ifname, mac, DEFAULT_MTU, LinkType.ETHER, ifindex)

    # ----------------------------------------------------------------- internals
    def _device_dir(self, address: str) -> Path:
        link = self.sys / "bus/pci/devices" / validate.pci_address(address)
        if not link.is_symlink():
            raise EmulationError(f"no PCI device {address} in the emulated tree {self.root}")
        return Path(os.path.realpath(link))

    def _bridge(self, domain: int, bus: int) -> Path:
        """The root port above ``bus``: ``sys/devices/pci<dom>:<bus-1>/<dom>:<bus-1>:00.0``.

        When that address is already an emulated device (PFs on consecutive buses), the
        device sits directly under its host bridge ``sys/devices/pci<dom>:<bus>``.
        """
        up = max(bus - 1, 0)
        addr = _address(domain, up << 8)
        bridge = self.sys / "devices" / f"pci{domain:04x}:{up:02x}" / addr
        if bridge.is_dir():
            return bridge
        if (self.sys / "bus/pci/devices" / addr).is_symlink():
            host = self.sys / "devices" / f"pci{domain:04x}:{bus:02x}"
            host.mkdir(parents=True, exist_ok=True)
            return host
        self._add_device(bridge, addr, "8086", "2030", "0x060400", -1, "pcieport", None)
        return bridge

    def _add_device(self, path: Path, addr: str, vendor: str, device: str, pci_class: str,
                    numa_node: int, driver: str | None, iommu_group: int | None) -> None:
        path.mkdir(parents=True)
        _write(path / "vendor", "0x" + vendor)
        _write(path / "device", "0x" + device)
        _write(path / "class", pci_class)
        _write(path / "numa_node", str(numa_node))
        _write(path / "driver_override", "(null)")
        _write(path / "uevent", f"PCI_CLASS={int(pci_class, 16):X}\n"
                                f"PCI_ID={vendor.upper()}:{device.upper()}\nPCI_SLOT_NAME={addr}")
        (self.sys / "bus/pci/devices").mkdir(parents=True, exist_ok=True)
        _symlink(self.sys / "bus/pci/devices" / addr, path)
        _symlink(path / "subsystem", self.sys / "bus/pci")
        if driver is not None:
            self._bind(path, driver)
        if iommu_group is not None:
            group_dir = self.sys / "kernel/iommu_groups" / str(iommu_group)
            (group_dir / "devices").mkdir(parents=True)
            _symlink(group_dir / "devices" / addr, path)
            _symlink(path / "iommu_group", group_dir)

    def _bind(self, path: Path, driver: str) -> None:
        drv_dir = self.sys / "bus/pci/drivers" / driver
        drv_dir.mkdir(parents=True, exist_ok=True)
        _symlink(drv_dir / path.name, path)
        _symlink(path / "driver", drv_dir)

    def _create_vfs(self, pf_dir: Path, indices: range, *, profile: NicProfile | None,
                    ifnames: tuple[str | None, ...] | None,
                    drivers: Mapping[int, str | None],
                    addresses: tuple[str, ...] | None) -> list[PciAddress]:
        if not indices:
            return []
        domain, bus, devfn = _split(pf_dir.name)
        pf_rid = bus << 8 | devfn
        offset = int(_read(pf_dir / "sriov_offset"))
        stride = int(_read(pf_dir / "sriov_stride"))
        vendor = _read(pf_dir / "vendor")[2:]
        vf_device = _read(pf_dir / "sriov_vf_device")
        pci_class = _read(pf_dir / "class")
        numa = int(_read(pf_dir / "numa_node"))
        default_driver = profile.vf_driver if profile else None
        pf_net = _pf_netdev_dir(pf_dir, own=True)
        link_type = _link_type_of(pf_net) if pf_net else LinkType.ETHER
        pf_mtu = int(_read(pf_net / "mtu")) if pf_net else DEFAULT_MTU
        group = self._next_number(self.sys / "kernel/iommu_groups")
        ifindex = self._next_ifindex()
        created: list[PciAddress] = []
        for index in indices:
            if addresses is not None:
                addr = validate.pci_address(addresses[index])
            else:
                rid = pf_rid + offset + index * stride
                if rid > 0xFFFF:
                    raise EmulationError(f"VF {index} of {pf_dir.name} falls outside bus ff")
                addr = _address(domain, rid)
            vf_dir = pf_dir.parent / addr
            driver = drivers.get(index, default_driver)
            kind = DriverKind.of(driver)
            self._add_device(vf_dir, addr, vendor, vf_device, pci_class, numa, driver, group)
            _symlink(vf_dir / "physfn", pf_dir)
            _symlink(pf_dir / f"virtfn{index}", vf_dir)
            if profile is not None and profile.rdma:
                classes.add_rdma(self, vf_dir, profile.rdma_prefix,
                                 infiniband=link_type is LinkType.INFINIBAND)
            if kind is DriverKind.VFIO:
                classes.add_vfio_group(self, str(group))
            elif kind is DriverKind.UIO and driver is not None:
                classes.add_uio(self, vf_dir, driver)
            elif kind is DriverKind.KERNEL and int(pci_class, 16) >> 16 == NETWORK_CLASS:
                (vf_dir / "net").mkdir()
                name = ifnames[index - indices.start] if ifnames is not None else None
                if name is not None:
                    if (self.sys / "class/net" / name).is_symlink():
                        raise EmulationError(f"netdev name {name} is already used")
                    self._add_netdev(vf_dir, name, mac_for(addr, 1), pf_mtu, link_type, ifindex)
                    ifindex += 1
            group += 1
            created.append(addr)
        _write(pf_dir / "sriov_numvfs", str(indices.stop))
        log.debug("created %s VFs under %s", len(created), pf_dir.name)
        return created

    def _remove_vf(self, pf_dir: Path, index: int) -> None:
        link = pf_dir / f"virtfn{index}"
        vf_dir = Path(os.path.realpath(link))
        self.bind_vf_driver(vf_dir.name, None)
        group = os.path.basename(os.readlink(vf_dir / "iommu_group"))
        shutil.rmtree(self.sys / "kernel/iommu_groups" / group, ignore_errors=True)
        _unlink(self.sys / "bus/pci/devices" / vf_dir.name)
        classes.remove_rdma(self, vf_dir)
        shutil.rmtree(vf_dir)
        link.unlink()

    def _add_netdev(self, dev_dir: Path, ifname: str, mac: str, mtu: int,
                    link_type: LinkType, ifindex: int) -> None:
        nd = dev_dir / "net" / ifname
        nd.mkdir(parents=True)
        if link_type is LinkType.INFINIBAND:  # 20-byte IPoIB hardware address
            mac = "80:00:00:48:fe:80:00:00:00:00:00:00:" + mac + ":00:01"
        files = {"address": mac, "broadcast": "ff:ff:ff:ff:ff:ff", "mtu": mtu,
                 "type": _ARPHRD.get(link_type, 1), "carrier": 1, "operstate": "up",
                 "ifindex": ifindex, "iflink": ifindex, "addr_len": len(mac.split(":")),
                 "ifalias": "", "tx_queue_len": 1000}
        for name, value in files.items():
            _write(nd / name, str(value))
        _symlink(nd / "device", dev_dir)
        _symlink(nd / "subsystem", self.sys / "class/net")
        (self.sys / "class/net").mkdir(parents=True, exist_ok=True)
        _symlink(self.sys / "class/net" / ifname, nd)

    @staticmethod
    def _update_netdev(nd: Path, mac: str | None, mtu: int | None, ifindex: int | None) -> None:
        if mac is not None:
            _write(nd / "address", mac)
        if mtu is not None:
            _write(nd / "mtu", str(mtu))
        if ifindex is not None:
            _write(nd / "ifindex", str(ifindex))
            _write(nd / "iflink", str(ifindex))

    def _remove_netdev(self, net: Path, name: str) -> None:
        _unlink(self.sys / "class/net" / name)
        shutil.rmtree(net / name)

    def _next_ifindex(self) -> int:
        net = self.sys / "class/net"
        indexes = [int(_read(net / n / "ifindex")) for n in os.listdir(net)] if net.is_dir() else []
        return max(indexes, default=100) + 1  # stay clear of the real host's low indexes

    @staticmethod
    def _next_number(directory: Path, prefix: str = "") -> int:
        if not directory.is_dir():
            return 0
        nums = [int(n[len(prefix):]) for n in os.listdir(directory)
                if n.startswith(prefix) and n[len(prefix):].isdigit()]
        return max(nums, default=-1) + 1


def _pf_netdev_dir(dev_dir: Path, own: bool = False) -> Path | None:
    """The first PF netdev directory of a VF (via ``physfn``), or of ``dev_dir`` if ``own``."""
    base = dev_dir if own else dev_dir / "physfn"
    if not own and not base.is_symlink():
        return None
    names = sorted(os.listdir(base / "net")) if (base / "net").is_dir() else []
    return base / "net" / names[0] if names else None


def _link_type_of(netdev_dir: Path) -> LinkType:
    return LinkType.from_arphrd(int(_read(netdev_dir / "type")))


def _read(path: Path) -> str:
    return path.read_text().strip()


def _write(path: Path, text: str) -> None:
    path.write_text(text + "\n")


def _symlink(link: Path, target: Path) -> None:
    """A relative symlink, exactly as sysfs spells them (``../../../devices/...``)."""
    os.symlink(os.path.relpath(target, link.parent), link)


def _unlink(path: Path) -> None:
    path.unlink(missing_ok=True)
