"""Selector predicates of the resource-pool config: does this VF belong in a pool?

One small class per ``selectors`` key. Each is called with a
:class:`~sriov.types.VirtualFunction` and answers ``(matched, reason)``; the reason
reads like ``"vendors: 15b3 not in [8086]"`` so users see why a VF is not selected.
Values of one key are ORed, keys of one selector object are ANDed (as upstream).
Pure: no I/O.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Sequence
from typing import Protocol

from sriov.ranges import DeviceRef
from sriov.types import PciAddress, VirtualFunction

Match = tuple[bool, str]


class DeviceType(enum.StrEnum):
    """``deviceType`` of a pool."""

    NET_DEVICE = "netDevice"
    ACCELERATOR = "accelerator"
    AUX_NET_DEVICE = "auxNetDevice"


class VdpaType(enum.StrEnum):
    VHOST = "vhost"
    VIRTIO = "virtio"


_VDPA_TYPE_OF_DRIVER = {"vhost_vdpa": "vhost", "virtio_vdpa": "virtio"}


class Predicate(Protocol):
    @property
    def key(self) -> str:
        """The config key this predicate implements, e.g. ``pfNames``."""
        ...

    def __call__(self, vf: VirtualFunction) -> Match: ...


def _listing(values: Sequence[object]) -> str:
    return "[" + ", ".join(str(v) for v in values) + "]"


@dataclasses.dataclass(frozen=True, slots=True)
class _ValueIn:
    """Matches when one attribute of the VF equals one of the configured values."""

    key: str
    attribute: str
    values: tuple[str, ...]

    def __call__(self, vf: VirtualFunction) -> Match:
        actual = getattr(vf, self.attribute)
        shown = str(actual) if actual is not None else (
            "no driver" if self.attribute == "driver" else f"no {self.attribute.replace('_', ' ')}")
        verdict = "in" if actual is not None and str(actual) in self.values else "not in"
        return verdict == "in", f"{self.key}: {shown} {verdict} {_listing(self.values)}"


def vendors(values: tuple[str, ...]) -> Predicate:
    return _ValueIn("vendors", "vendor_id", values)


def devices(values: tuple[str, ...]) -> Predicate:
    return _ValueIn("devices", "device_id", values)


def drivers(values: tuple[str, ...]) -> Predicate:
    return _ValueIn("drivers", "driver", values)


def pci_addresses(values: tuple[PciAddress, ...]) -> Predicate:
    return _ValueIn("pciAddresses", "address", values)


def link_types(values: tuple[str, ...]) -> Predicate:
    return _ValueIn("linkTypes", "link_type", values)


def acpi_indexes(values: tuple[str, ...]) -> Predicate:
    return _ValueIn("acpiIndexes", "acpi_index", values)


def ddp_profiles(values: tuple[str, ...]) -> Predicate:
    """Exact name; a device whose profile is unknown (no ``ddptool``) never matches."""
    return _ValueIn("ddpProfiles", "ddp_profile", values)


def p_keys(values: tuple[str, ...]) -> Predicate:
    return _ValueIn("pKeys", "pkey", values)


@dataclasses.dataclass(frozen=True, slots=True)
class AuxTypes:
    """``auxTypes``: the ``<type>`` of an auxiliary device ``<drv>.<type>.<n>``."""

    values: tuple[str, ...]
    key: str = "auxTypes"

    def __call__(self, vf: VirtualFunction) -> Match:
        if vf.aux_name is None:
            return False, "auxTypes: not an auxiliary device"
        kind = vf.aux_name.split(".")[-2]
        ok = kind in self.values
        return ok, f"auxTypes: {kind} {'in' if ok else 'not in'} {_listing(self.values)}"


@dataclasses.dataclass(frozen=True, slots=True)
class VdpaTypeIs:
    """``vdpaType``: the device has a vDPA device bound to that type's driver."""

    wanted: VdpaType | str
    """A string that is not a :class:`VdpaType` selects nothing (as upstream)."""
    key: str = "vdpaType"

    def __call__(self, vf: VirtualFunction) -> Match:
        if self.wanted not in tuple(VdpaType):
            return False, f"vdpaType: {self.wanted!r} is not vhost or virtio, selects nothing"
        if vf.vdpa is None:
            return False, "vdpaType: no vDPA device on this function"
        actual = _VDPA_TYPE_OF_DRIVER.get(vf.vdpa.driver or "")
        if actual != self.wanted:
            return False, (f"vdpaType: {vf.vdpa.name} is {actual or 'unbound'}, "
                           f"not {self.wanted}")
        return True, f"vdpaType: {vf.vdpa.name} is {actual}"


@dataclasses.dataclass(frozen=True, slots=True)
class PfRefs:
    """``pfNames`` (by PF netdev) or ``rootDevices`` (by PF PCI address), with VF ranges.

    As upstream (``getItem``/``isSelected``): the part before ``#`` is compared
    case-insensitively, and only the *first* entry naming the VF's PF counts, so
    ``["p0#0-1", "p0#5"]`` selects VFs 0 and 1 of ``p0``, not 5.
    """

    key: str
    refs: tuple[DeviceRef, ...]
    by_address: bool

    def __call__(self, vf: VirtualFunction) -> Match:
        if not (vf.is_vf or vf.aux_name):  # upstream: devices without a PF are dropped
            return False, f"{self.key}: {vf.id} is not a VF or SF"
        pf = vf.pf_address if self.by_address else vf.pf_netdev
        if pf is None:
            return False, f"{self.key}: the VF's PF has no netdev"
        ref = next((r for r in self.refs if r.device.casefold() == pf.casefold()), None)
        if ref is None:
            return False, f"{self.key}: PF {pf} not in {_listing(self.refs)}"
        if ref.covers(vf.index):
            return True, f"{self.key}: {pf} VF {vf.index} selected"
        return False, f"{self.key}: {pf} VF {vf.index} not in #{ref.range_text}"


@dataclasses.dataclass(frozen=True, slots=True)
class IsRdma:
    """``isRdma: true`` keeps only RDMA-capable VFs (``false`` does not filter, as upstream)."""

    key: str = "isRdma"

    def __call__(self, vf: VirtualFunction) -> Match:
        return vf.is_rdma, "isRdma: VF is RDMA-capable" if vf.is_rdma else "isRdma: VF has no RDMA"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class SelectorSet:
    """One selector object. Empty tuples / ``False`` / ``None`` mean "not filtered"."""

    vendors: tuple[str, ...] = ()
    """Four lower-case hex digits each."""
    devices: tuple[str, ...] = ()
    drivers: tuple[str, ...] = ()
    pci_addresses: tuple[PciAddress, ...] = ()
    acpi_indexes: tuple[str, ...] = ()
    pf_names: tuple[DeviceRef, ...] = ()
    root_devices: tuple[DeviceRef, ...] = ()
    link_types: tuple[str, ...] = ()
    ddp_profiles: tuple[str, ...] = ()
    p_keys: tuple[str, ...] = ()
    is_rdma: bool = False
    need_vhost_net: bool = False
    """Carried to the device plugin (adds ``/dev/vhost-net``); never filters."""
    vdpa_type: VdpaType | str | None = None
    """A :class:`VdpaType`, or another string (kept as upstream keeps it: matches nothing)."""
    aux_types: tuple[str, ...] = ()

    def predicates(self) -> tuple[Predicate, ...]:
        """The filters this object applies, in upstream's order."""
        found: list[Predicate | None] = [
            vendors(self.vendors) if self.vendors else None,
            devices(self.devices) if self.devices else None,
            drivers(self.drivers) if self.drivers else None,
            pci_addresses(self.pci_addresses) if self.pci_addresses else None,
            acpi_indexes(self.acpi_indexes) if self.acpi_indexes else None,
            AuxTypes(self.aux_types) if self.aux_types else None,
            PfRefs("pfNames", self.pf_names, by_address=False) if self.pf_names else None,
            PfRefs("rootDevices", self.root_devices, by_address=True)
            if self.root_devices else None,
            link_types(self.link_types) if self.link_types else None,
            ddp_profiles(self.ddp_profiles) if self.ddp_profiles else None,
            p_keys(self.p_keys) if self.p_keys else None,
            IsRdma() if self.is_rdma else None,
            VdpaTypeIs(self.vdpa_type) if self.vdpa_type else None,
        ]
        return tuple(p for p in found if p is not None)

    def match(self, vf: VirtualFunction) -> Match:
        """All keys must match; the reason lists every key that did not (or all that did)."""
        results = [p(vf) for p in self.predicates()]
        failed = [reason for ok, reason in results if not ok]
        if failed:
            return False, "; ".join(failed)
        return True, "; ".join(reason for _, reason in results) or "empty selector matches all"
