"""What an emulated SR-IOV host looks like, and the record of what was built.

Pure: no file, netlink or sysfs access. :class:`EmulationSpec` is what the user asks
for (``sriovctl emulate up --pfs 2 --vfs 4 ...``); :class:`EmulationState` is the
spec plus everything ``up`` decided (PCI addresses, netdev and wire-end names, MACs)
and everything ``refresh`` learned since (where each VF netdev is, its last name,
MAC and MTU). The state round-trips through ``<root>/sriov-emu.json``.

Naming (all names are checked against IFNAMSIZ when the spec is built):

- PF netdev ``<pf_prefix><p>`` (``sriovpf0``), VF netdev ``<pf_prefix><p>v<v>``
  (``sriovpf0v3``), like systemd's ``ens1f0v3``;
- the host-side "wire" end of each veth pair ``<wire_prefix><p>p`` / ``<wire_prefix><p>v<v>``;
- the per-host bridge ``<bridge>`` (untagged) and one bridge ``<bridge>v<vid>`` per VF VLAN.
"""

from __future__ import annotations

import dataclasses
import enum
import zlib
from collections.abc import Mapping
from typing import Any

from sriov import validate
from sriov.errors import InvalidInputError
from sriov.types import IfName, MacAddress, PciAddress

STATE_FILE = "sriov-emu.json"
STATE_VERSION = 1
MAX_VFS_PER_PF = 4096
MAX_PFS = 16
MIN_MTU, MAX_MTU = 68, 9216


class Profile(enum.StrEnum):
    """NIC families the emulator can pretend to be (see ``sriov.emulate.profiles``)."""

    IGB = "igb"  # Intel 82576, igb/igbvf
    X710 = "x710"  # Intel X710, i40e/iavf
    CX5 = "cx5"  # Mellanox ConnectX-5, mlx5_core (RDMA)
    BF2 = "bf2"  # BlueField-2 / ConnectX-6 Dx, mlx5_core (RDMA, subfunctions)


DEFAULT_PROFILE = Profile.X710


class VfLocation(enum.StrEnum):
    """Where the netdev of an emulated VF currently is."""

    HOST = "host"  # in the host netns, listed under the VF's net/ in sysfs
    NETNS = "netns"  # moved into another netns (a pod): no net/ entry
    PARKED = "parked"  # bound to a non-netdev driver (vfio-pci): no veth pair exists
    ABSENT = "absent"  # not backed by a netdev (tree-only mode)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class EmulationSpec:
    """What to emulate. Every field is validated on construction."""

    pfs: int = 2
    vfs: int = 4
    """VFs created per PF (``sriov_numvfs``)."""
    profile: Profile = DEFAULT_PROFILE
    vfio: int = 0
    """The last ``vfio`` VFs of each PF start bound to vfio-pci (DPDK demos)."""
    numa_nodes: int = 2
    """PF ``p`` sits on NUMA node ``p % numa_nodes``; 0 means no topology (-1)."""
    mtu: int = 1500
    netdevs: bool = True
    """False: build the sysfs tree only (benchmarks with thousands of VFs)."""
    pf_prefix: str = "sriovpf"
    wire_prefix: str = "sriovw"
    bridge: str = "sriovemu0"
    classes: bool = False
    """Also emulate one device of every other class (see ``sriov.emulate.showcase``)."""
    noiommu: bool = False
    """vfio no-IOMMU mode (``vfio.enable_unsafe_noiommu_mode``): vfio-pci groups are
    ``noiommu-N``."""

    def __post_init__(self) -> None:
        _check_int("pfs", self.pfs, 1, MAX_PFS)
        _check_int("vfs", self.vfs, 0, MAX_VFS_PER_PF)
        _check_int("vfio", self.vfio, 0, self.vfs)
        _check_int("numa-nodes", self.numa_nodes, 0, 64)
        _check_int("mtu", self.mtu, MIN_MTU, MAX_MTU)
        if not isinstance(self.profile, Profile):
            raise InvalidInputError("profile", self.profile,
                                    "expected one of " + ", ".join(p.value for p in Profile))
        last = self.pfs - 1, max(self.vfs, 1) - 1
        for field, sample in (("pf-prefix", vf_netdev(self, *last)),
                              ("wire-prefix", vf_wire(self, *last)),
                              ("bridge", vlan_bridge(self.bridge, 4095))):
            try:
                validate.ifname(sample)
            except InvalidInputError as e:
                raise InvalidInputError(
                    field,
                    getattr(self, field.replace("-", "_")),
                    f"gives interface name {sample!r} that is {e.reason}",
                ) from e

    def numa_node(self, pf: int) -> int | None:
        return pf % self.numa_nodes if self.numa_nodes else None

    def starts_on_vfio(self, vf: int) -> bool:
        return vf >= self.vfs - self.vfio


def _check_int(field: str, value: object, low: int, high: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidInputError(field, value, "must be an integer")
    if not low <= value <= high:
        raise InvalidInputError(field, value, f"must be between {low} and {high}")


def pf_netdev(spec: EmulationSpec, pf: int) -> IfName:
    return IfName(f"{spec.pf_prefix}{pf}")


def vf_netdev(spec: EmulationSpec, pf: int, vf: int) -> IfName:
    return IfName(f"{spec.pf_prefix}{pf}v{vf}")


def pf_wire(spec: EmulationSpec, pf: int) -> IfName:
    return IfName(f"{spec.wire_prefix}{pf}p")


def vf_wire(spec: EmulationSpec, pf: int, vf: int) -> IfName:
    return IfName(f"{spec.wire_prefix}{pf}v{vf}")


def vlan_bridge(bridge: str, vid: int) -> IfName:
    """The bridge of VF VLAN ``vid``: ``<bridge>`` for untagged (0), ``<bridge>v<vid>`` else."""
    return IfName(bridge if vid == 0 else f"{bridge}v{vid}")


def _host_byte(spec: EmulationSpec) -> int:
    # Two emulated hosts (different bridges) get different MACs, deterministically.
    return zlib.crc32(spec.bridge.encode()) & 0xFF


def pf_mac(spec: EmulationSpec, pf: int) -> MacAddress:
    """Locally administered, unicast: ``02:<host>:00:<pf>:00:00``."""
    return MacAddress(f"02:{_host_byte(spec):02x}:00:{pf:02x}:00:00")


def vf_mac(spec: EmulationSpec, pf: int, vf: int) -> MacAddress:
    """Locally administered, unicast: ``02:<host>:01:<pf>:<vf hi>:<vf lo>``."""
    return MacAddress(f"02:{_host_byte(spec):02x}:01:{pf:02x}:{vf >> 8:02x}:{vf & 0xFF:02x}")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class PfRecord:
    index: int
    address: PciAddress
    netdev: IfName
    wire: IfName
    mac: MacAddress
    numa_node: int | None
    carrier: bool = True


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class VfRecord:
    pf: int
    """Index of the PF in the spec (not the PCI function)."""
    pf_address: PciAddress
    index: int
    """VF index N (the PF's ``virtfnN``)."""
    address: PciAddress
    wire: IfName
    driver: str
    location: VfLocation
    netdev: IfName
    """Last known name of the VF netdev (its name inside a pod while there)."""
    mac: MacAddress
    """Last known MAC of the VF netdev."""
    mtu: int
    """Last known MTU of the VF netdev."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class EmulationState:
    """The content of ``sriov-emu.json``."""

    spec: EmulationSpec
    pfs: tuple[PfRecord, ...]
    vfs: tuple[VfRecord, ...]

    def pf_by_address(self, address: str) -> PfRecord | None:
        return next((p for p in self.pfs if p.address == address), None)

    def pf_by_name(self, name: str) -> PfRecord | None:
        """Find a PF by PCI address or netdev name."""
        return next((p for p in self.pfs if name in (p.address, p.netdev)), None)

    def vf_by_address(self, address: str) -> VfRecord | None:
        return next((v for v in self.vfs if v.address == address), None)

    def vfs_of(self, pf: int) -> tuple[VfRecord, ...]:
        return tuple(sorted((v for v in self.vfs if v.pf == pf), key=lambda v: v.index))

    def with_vf(self, record: VfRecord) -> EmulationState:
        """A copy with ``record`` replacing (or adding) the VF of the same address."""
        others = tuple(v for v in self.vfs if v.address != record.address)
        vfs = tuple(sorted((*others, record), key=lambda v: (v.pf, v.index)))
        return dataclasses.replace(self, vfs=vfs)

    def with_pf(self, record: PfRecord) -> EmulationState:
        pfs = tuple(record if p.index == record.index else p for p in self.pfs)
        return dataclasses.replace(self, pfs=pfs)

    def without_vf(self, address: str) -> EmulationState:
        return dataclasses.replace(self, vfs=tuple(v for v in self.vfs if v.address != address))

    def to_json(self) -> dict[str, object]:
        spec = dataclasses.asdict(self.spec)
        spec["profile"] = self.spec.profile.value
        return {
            "version": STATE_VERSION,
            "spec": spec,
            "pfs": [dataclasses.asdict(p) for p in self.pfs],
            "vfs": [dataclasses.asdict(v) for v in self.vfs],
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> EmulationState:
        """Parse ``sriov-emu.json``; raises :class:`InvalidInputError` naming the bad field."""
        if not isinstance(obj, Mapping) or obj.get("version") != STATE_VERSION:
            raise InvalidInputError("sriov-emu.json version", _get(obj, "version"),
                                    f"expected {STATE_VERSION}")
        try:
            raw_spec = dict(obj["spec"])
            raw_spec["profile"] = _enum(Profile, "spec.profile", raw_spec.get("profile"))
            spec = EmulationSpec(**raw_spec)
            pfs = tuple(_pf(i, p) for i, p in enumerate(obj["pfs"]))
            vfs = tuple(_vf(i, v) for i, v in enumerate(obj["vfs"]))
        except (KeyError, TypeError) as e:
            raise InvalidInputError("sriov-emu.json", str(e), "missing or malformed field") from e
        return cls(spec=spec, pfs=pfs, vfs=vfs)


def _get(obj: object, key: str) -> object:
    return obj.get(key) if isinstance(obj, Mapping) else None


def _enum(kind: type[enum.StrEnum], field: str, value: object) -> Any:
    if not isinstance(value, str):
        raise InvalidInputError(field, value, "unknown value")
    try:
        return kind(value)
    except ValueError as e:
        raise InvalidInputError(field, value, "unknown value") from e


def _pf(i: int, raw: Mapping[str, Any]) -> PfRecord:
    return PfRecord(
        index=int(raw["index"]),
        address=validate.pci_address(raw["address"]),
        netdev=validate.ifname(raw["netdev"]),
        wire=validate.ifname(raw["wire"]),
        mac=validate.mac_address(raw["mac"]),
        numa_node=None if raw["numa_node"] is None else int(raw["numa_node"]),
        carrier=bool(raw["carrier"]),
    )


def _vf(i: int, raw: Mapping[str, Any]) -> VfRecord:
    return VfRecord(
        pf=int(raw["pf"]),
        pf_address=validate.pci_address(raw["pf_address"]),
        index=int(raw["index"]),
        address=validate.pci_address(raw["address"]),
        wire=validate.ifname(raw["wire"]),
        driver=str(raw["driver"]),
        location=_enum(VfLocation, f"vfs[{i}].location", raw["location"]),
        netdev=validate.ifname(raw["netdev"]),
        mac=validate.mac_address(raw["mac"]),
        mtu=int(raw["mtu"]),
    )
