"""Discovery of SR-IOV PFs and VFs from sysfs: pure filesystem reads under a root.

``SysfsReader(root)`` reads ``<root>/sys/bus/pci/devices`` exactly as the kernel lays it
out (see :mod:`sriov.emulate.tree` for the layout). A PF is a PCI device of network
class ``0x02xxxx`` (Ethernet ``0x0200``, InfiniBand ``0x0207``, ...) that has
``sriov_totalvfs``; SR-IOV devices of other classes (NVMe, accelerators) are ignored.
Its VFs are found through the PF's ``virtfnN`` links, read once per PF, so discovery is
linear in the number of devices.

:meth:`SysfsReader.inventory` never raises for a bad device: a device whose attributes
are missing, unreadable or garbage becomes a :class:`~sriov.types.SkippedDevice` with a
reason and a log warning. Single-device lookups (:meth:`~SysfsReader.pf`,
:meth:`~SysfsReader.vf`) raise :class:`~sriov.errors.DeviceNotFoundError` with a hint,
or :class:`~sriov.errors.SysfsError` for garbage.

No netlink here; imports only the standard library and ``sriov`` value modules.
"""

from __future__ import annotations

import errno
import logging
import os
import re
from collections.abc import Callable
from pathlib import Path

from sriov import validate
from sriov.errors import DeviceNotFoundError, SysfsError
from sriov.switchdev import uplink_representor
from sriov.sysfs_classes import ACCELERATOR_CLASS, ClassContext, aux_sfs, pci_device, virtfn_index
from sriov.types import (
    DeviceClass,
    IfName,
    Inventory,
    LinkType,
    PciAddress,
    PhysicalFunction,
    SkippedDevice,
    VirtualFunction,
)

log = logging.getLogger(__name__)

DEFAULT_SYSFS_ROOT = Path("/")
NETWORK_CLASS = 0x02
INFINIBAND_SUBCLASS = 0x0207
_HEX_ID = re.compile(r"^0x([0-9a-fA-F]{4})$")
_VfMap = dict[int, tuple[PciAddress, str]]
"""VF index -> (VF address, VF device directory), from the PF's ``virtfnN`` links."""


class _NotNetwork(Exception):
    """An SR-IOV device that is not a network controller: not ours, silently ignored."""


def _read(path: str) -> str:
    """Read a small sysfs attribute (raw ``os`` calls: this is the hot path)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.read(fd, 4096).decode("ascii", "replace").strip()
    finally:
        os.close(fd)


def _attr(dev: str, name: str) -> str:
    path = os.path.join(dev, name)
    try:
        return _read(path)
    except OSError as e:
        raise SysfsError(path, f"cannot read {name}: {e.strerror or e}") from e


def _int_attr(dev: str, name: str, raw: str | None = None) -> int:
    text = _attr(dev, name) if raw is None else raw
    try:
        return int(text, 0)
    except ValueError:
        raise SysfsError(os.path.join(dev, name), f"{name} is not an integer: {text!r}") from None


def _hex_id(dev: str, name: str) -> str:
    text = _attr(dev, name)
    m = _HEX_ID.fullmatch(text)
    if not m:
        raise SysfsError(os.path.join(dev, name), f"{name} is not a 0xXXXX id: {text!r}")
    return m.group(1).lower()


def _numa(dev: str) -> int | None:
    """NUMA node; ``None`` for -1 and for kernels without NUMA (no ``numa_node`` file)."""
    try:
        raw = _read(os.path.join(dev, "numa_node"))
    except FileNotFoundError:
        return None
    except OSError as e:
        raise SysfsError(os.path.join(dev, "numa_node"), f"cannot read numa_node: {e}") from e
    node = _int_attr(dev, "numa_node", raw)
    return None if node < 0 else node


def _link_basename(path: str) -> str | None:
    """Basename of a symlink's target; ``None`` when there is no such link."""
    try:
        return os.path.basename(os.readlink(path))
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as e:
        if e.errno == errno.EINVAL:  # exists but is not a symlink
            raise SysfsError(path, "expected a symlink") from e
        raise SysfsError(path, f"cannot read link: {e.strerror}") from e


def _link_basename_quiet(path: str) -> str | None:
    try:
        return _link_basename(path)
    except SysfsError:
        return None


def _entries(path: str) -> list[str]:
    """Sorted names in a directory; empty when it does not exist."""
    try:
        return sorted(os.listdir(path))
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as e:
        raise SysfsError(path, f"cannot list: {e.strerror}") from e


def _netdev_facts(dev: str, netdev: str) -> tuple[LinkType, int | None]:
    """Link type (from ``type``, ARPHRD) and MTU of ``<dev>/net/<netdev>``."""
    nd = os.path.join(dev, "net", netdev)
    try:
        link_type = LinkType.from_arphrd(int(_read(os.path.join(nd, "type"))))
    except (OSError, ValueError):
        link_type = LinkType.UNKNOWN
    try:
        mtu: int | None = int(_read(os.path.join(nd, "mtu")))
    except (OSError, ValueError):
        mtu = None
    return link_type, mtu


class SysfsReader:
    """Reads SR-IOV devices under ``<root>/sys``; ``root`` is ``/`` on a real host."""

    def __init__(self, root: Path = DEFAULT_SYSFS_ROOT) -> None:
        self.root = Path(root)
        self.devices_dir = os.path.join(self.root, "sys", "bus", "pci", "devices")

    # ---------------------------------------------------------------- inventory
    def inventory(self) -> Inventory:
        """Every SR-IOV network PF and its VFs. Raises only if there is no PCI bus at all."""
        try:
            names = sorted(os.listdir(self.devices_dir))
        except OSError as e:
            raise SysfsError(self.devices_dir, f"no PCI device list: {e.strerror}") from e
        pfs: list[PhysicalFunction] = []
        vfs: list[VirtualFunction] = []
        skipped: list[SkippedDevice] = []
        claimed: set[str] = set()
        failed_pfs: set[str] = set()
        others: list[str] = []
        ctx = ClassContext(str(self.root))
        extra: list[VirtualFunction] = []
        sriov_accelerators: list[str] = []

        def skip(path: str, reason: str) -> None:
            log.warning("skipping %s: %s", path, reason)
            skipped.append(SkippedDevice(path=path, reason=reason))

        for name in names:
            dev = os.path.join(self.devices_dir, name)
            try:
                total_raw = _read(os.path.join(dev, "sriov_totalvfs"))
            except (FileNotFoundError, NotADirectoryError):
                others.append(name)
                continue
            except OSError as e:
                skip(dev, f"cannot read sriov_totalvfs: {e.strerror}")
                failed_pfs.add(name)
                continue
            try:
                pf, vf_map, bad_links = self._load_pf(PciAddress(name), dev, total_raw)
            except _NotNetwork:
                sriov_accelerators.append(name)
                continue
            except SysfsError as e:
                skip(e.path, e.reason)
                failed_pfs.add(name)
                continue
            for path, reason in bad_links:
                skip(path, reason)
            pfs.append(pf)
            if pf.num_vfs == 0:  # upstream pools a PF without VFs like any NIC
                self._add_plain(ctx, extra, PciAddress(name), dev, DeviceClass.NIC)
            for index, (vf_addr, vf_dir) in vf_map.items():
                claimed.add(vf_addr)
                try:
                    vfs.append(self._load_vf(vf_addr, vf_dir, index, pf, ctx))
                except SysfsError as e:
                    skip(e.path, e.reason)
        for name in sriov_accelerators + others:
            if name not in claimed:
                self._classify_other(ctx, extra, skip, name, failed_pfs, {p.address for p in pfs})
        parents: dict[str, object] = {p.address: p for p in pfs}
        parents.update((d.address, d) for d in extra if d.device_class is DeviceClass.NIC)
        pf_netdevs: dict[str, IfName | None] = {p.address: p.netdev for p in pfs}
        extra.extend(aux_sfs(ctx, str(self.root), parents, pf_netdevs))
        return Inventory(pfs=tuple(pfs), vfs=tuple(vfs), skipped=tuple(skipped),
                         others=tuple(extra))

    def _add_plain(self, ctx: ClassContext, extra: list[VirtualFunction], name: PciAddress,
                   dev: str, device_class: DeviceClass, pf_address: PciAddress | None = None,
                   index: int = -1) -> None:
        try:
            pci_class = _int_attr(dev, "class")
        except SysfsError:
            return
        found = pci_device(ctx, name, dev, pci_class, device_class, pf_address=pf_address,
                           index=index)
        if found is not None:
            extra.append(found)

    def _classify_other(self, ctx: ClassContext, extra: list[VirtualFunction],
                        skip: Callable[[str, str], None], name: str, failed_pfs: set[str],
                        pfs: set[str]) -> None:
        """A device that is neither a network PF nor one of its VFs: a NIC without SR-IOV,
        an accelerator function, an orphaned VF (skipped with a reason) or not ours."""
        dev = os.path.join(self.devices_dir, name)
        reason = self._orphan_reason(name, failed_pfs, pfs)
        if reason:
            skip(dev, reason)
            return
        try:
            base_class = _int_attr(dev, "class") >> 16
        except SysfsError:
            return
        pf_addr = _link_basename_quiet(os.path.join(dev, "physfn"))
        if base_class == ACCELERATOR_CLASS:
            pf_dir = os.path.join(self.devices_dir, pf_addr) if pf_addr else None
            self._add_plain(ctx, extra, PciAddress(name), dev, DeviceClass.ACCELERATOR,
                            pf_address=PciAddress(pf_addr) if pf_addr else None,
                            index=virtfn_index(pf_dir, name) if pf_dir else -1)
        elif base_class == NETWORK_CLASS and pf_addr is None:
            self._add_plain(ctx, extra, PciAddress(name), dev, DeviceClass.NIC)

    # ---------------------------------------------------------------- lookups
    def pf(self, address: str) -> PhysicalFunction:
        """The SR-IOV PF at ``address``; :class:`DeviceNotFoundError` with a hint if not one."""
        return self._pf_with_map(address)[0]

    def vf(self, address: str) -> VirtualFunction:
        """The VF at ``address``; :class:`DeviceNotFoundError` with a hint if it is not one."""
        addr = validate.pci_address(address)
        dev = self._existing(addr, "VF")
        if os.path.exists(os.path.join(dev, "sriov_totalvfs")):
            raise DeviceNotFoundError("VF", addr, "it is an SR-IOV PF, not a VF")
        pf_addr = _link_basename(os.path.join(dev, "physfn"))
        if pf_addr is None:
            raise DeviceNotFoundError("VF", addr, "not a VF: no physfn link")
        if not os.path.exists(os.path.join(dev, "physfn")):
            raise DeviceNotFoundError("VF", addr, f"its physfn link to {pf_addr} is dangling")
        pf, vf_map = self._pf_with_map(pf_addr)
        index = next((i for i, (a, _) in vf_map.items() if a == addr), None)
        if index is None:
            raise DeviceNotFoundError("VF", addr, f"PF {pf_addr} has no virtfnN link to it")
        return self._load_vf(addr, vf_map[index][1], index, pf)

    def device(self, device_id: str) -> VirtualFunction:
        """Any pool device by its ID (what the device plugin hands out): a VF (fast path),
        a NIC, an accelerator or an SF (``mlx5_core.sf.4``); :class:`DeviceNotFoundError`
        otherwise. For the CNI's non-VF classes."""
        if validate.is_pci_address(device_id) or ":" in device_id:
            addr = validate.pci_address(device_id)
            dev = self._existing(addr, "device")
            if _link_basename(os.path.join(dev, "physfn")) is not None:
                pf_dir = os.path.join(dev, "physfn")
                if os.path.exists(os.path.join(pf_dir, "sriov_totalvfs")) and \
                        _int_attr(pf_dir, "class") >> 16 == NETWORK_CLASS:
                    return self.vf(addr)
            device_id = addr
        found = next((d for d in self.inventory().others if d.id == device_id), None)
        if found is None:
            raise DeviceNotFoundError("device", device_id,
                                      "not a VF, NIC without VFs, accelerator or SF on this host")
        return found

    def vf_of(self, pf_address: str, index: int) -> VirtualFunction:
        """VF number ``index`` of a PF (``virtfn<index>``)."""
        pf, vf_map = self._pf_with_map(pf_address)
        if index not in vf_map:
            raise DeviceNotFoundError(
                "VF", f"{pf.address} #{index}",
                f"PF has {len(vf_map)} VFs (sriov_numvfs={pf.num_vfs})")
        return self._load_vf(*vf_map[index], index=index, pf=pf)

    def vf_netdev(self, address: str) -> IfName | None:
        """The VF's netdev in the host netns, ``None`` when bound to vfio/uio or moved away."""
        addr = validate.pci_address(address)
        names = _entries(os.path.join(self._existing(addr, "PCI device"), "net"))
        return IfName(names[0]) if names else None

    # ---------------------------------------------------------------- internals
    def _existing(self, addr: PciAddress, what: str) -> str:
        dev = os.path.join(self.devices_dir, addr)
        if not os.path.exists(dev):
            raise DeviceNotFoundError(what, addr, f"no such PCI device in {self.devices_dir}")
        return dev

    def _pf_with_map(self, address: str) -> tuple[PhysicalFunction, _VfMap]:
        addr = validate.pci_address(address)
        dev = self._existing(addr, "SR-IOV PF")
        try:
            total_raw = _read(os.path.join(dev, "sriov_totalvfs"))
        except FileNotFoundError:
            pf_addr = _link_basename(os.path.join(dev, "physfn"))
            hint = (f"it is a VF of {pf_addr}, not a PF" if pf_addr
                    else "not SR-IOV capable: no sriov_totalvfs")
            raise DeviceNotFoundError("SR-IOV PF", addr, hint) from None
        except OSError as e:
            raise SysfsError(os.path.join(dev, "sriov_totalvfs"), str(e.strerror)) from e
        try:
            pf, vf_map, _ = self._load_pf(addr, dev, total_raw)
        except _NotNetwork as e:
            raise DeviceNotFoundError("SR-IOV PF", addr, str(e)) from None
        return pf, vf_map

    def _load_pf(self, addr: PciAddress, dev: str, total_raw: str
                 ) -> tuple[PhysicalFunction, _VfMap, list[tuple[str, str]]]:
        pci_class = _int_attr(dev, "class")
        if pci_class >> 16 != NETWORK_CLASS:
            raise _NotNetwork(f"not a network device (class {pci_class:#08x})")
        total = _int_attr(dev, "sriov_totalvfs", total_raw)
        num = _int_attr(dev, "sriov_numvfs")
        vendor, device = _hex_id(dev, "vendor"), _hex_id(dev, "device")
        netdevs = tuple(IfName(n) for n in _entries(os.path.join(dev, "net")))
        found = uplink_representor(dev, netdevs)
        uplink = IfName(found) if found else None
        main_netdev = uplink or (netdevs[0] if netdevs else None)
        link_type, mtu = (_netdev_facts(dev, main_netdev) if main_netdev
                          else (LinkType.UNKNOWN, None))
        if not netdevs and pci_class >> 8 == INFINIBAND_SUBCLASS:
            link_type = LinkType.INFINIBAND
        vf_map: _VfMap = {}
        bad: list[tuple[str, str]] = []
        try:
            entries = [e.name for e in os.scandir(dev) if e.name.startswith("virtfn")]
        except OSError as e:
            raise SysfsError(dev, f"cannot list device directory: {e.strerror}") from e
        real_dir = os.path.realpath(dev)
        for name in entries:
            link = os.path.join(dev, name)
            try:
                target = os.readlink(link)
            except OSError:
                target = ""
            vf_addr = os.path.basename(target)
            if not name[6:].isdigit() or not validate.is_pci_address(vf_addr):
                bad.append((link, f"{name} of PF {addr} is not a link to a PCI address"))
                continue
            # the link's own target (``../<bdf>``) from the resolved PF dir: no symlink walks
            vf_dir = os.path.normpath(os.path.join(real_dir, target))
            vf_map[int(name[6:])] = (PciAddress(vf_addr), vf_dir)
        vf_map = dict(sorted(vf_map.items()))
        if len(vf_map) != num:
            log.debug("%s: sriov_numvfs=%s but %s virtfn links", addr, num, len(vf_map))
        pf = PhysicalFunction(
            address=addr, vendor_id=vendor, device_id=device,
            driver=_link_basename(os.path.join(dev, "driver")), netdevs=netdevs,
            total_vfs=total, num_vfs=num, numa_node=_numa(dev), link_type=link_type,
            mtu=mtu, vf_addresses=tuple(a for a, _ in vf_map.values()), uplink=uplink)
        return pf, vf_map, bad

    def _load_vf(self, addr: PciAddress, dev: str, index: int, pf: PhysicalFunction,
                 ctx: ClassContext | None = None) -> VirtualFunction:
        """The VF at ``dev``, the target of the PF's ``virtfn<index>``: what the PF says it is."""
        physfn = _link_basename(os.path.join(dev, "physfn"))
        if physfn is None and not os.path.isdir(dev):
            raise SysfsError(dev, f"virtfn{index} of PF {pf.address} points to a missing device")
        if physfn != pf.address:
            raise SysfsError(dev, f"VF {addr} has no physfn link back to PF {pf.address}"
                             if physfn is None else f"VF {addr} physfn points to {physfn}, "
                             f"not to PF {pf.address}")
        names = _entries(os.path.join(dev, "net"))
        netdev = IfName(names[0]) if names else None
        link_type = _netdev_facts(dev, netdev)[0] if netdev else pf.link_type
        group = _link_basename(os.path.join(dev, "iommu_group"))
        if group is not None and not group.isdigit():
            raise SysfsError(os.path.join(dev, "iommu_group"), f"not a group number: {group!r}")
        driver = _link_basename(os.path.join(dev, "driver"))
        facts = (ctx or ClassContext(str(self.root))).facts(
            addr, dev, tuple(names), link_type, driver)
        return VirtualFunction(
            address=addr, index=index, pf_address=pf.address, pf_netdev=pf.netdev,
            vendor_id=_hex_id(dev, "vendor"), device_id=_hex_id(dev, "device"),
            driver=driver, netdev=netdev,
            iommu_group=int(group) if group is not None else None, numa_node=_numa(dev),
            is_rdma=bool(facts["rdma_devices"]), link_type=link_type, **facts)

    def _orphan_reason(self, name: str, failed_pfs: set[str], pfs: set[str]) -> str | None:
        """Why a non-PF device with a ``physfn`` link was not listed (``None``: not ours)."""
        dev = os.path.join(self.devices_dir, name)
        try:
            pf_addr = _link_basename(os.path.join(dev, "physfn"))
        except SysfsError as e:
            return e.reason
        if pf_addr is None:
            return None  # not a VF at all
        if pf_addr in failed_pfs:
            return f"its PF {pf_addr} was skipped"
        if pf_addr in pfs:
            return f"PF {pf_addr} has no virtfnN link to this VF"
        if os.path.exists(os.path.join(dev, "physfn")):
            return None  # VF of a non-network PF
        try:
            if _int_attr(dev, "class") >> 16 != NETWORK_CLASS:
                return None
        except SysfsError:
            pass
        return f"physfn link is dangling (points to missing {pf_addr})"
