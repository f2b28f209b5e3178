"""Typed model of SR-IOV hardware and VF settings.

Pure value objects: frozen dataclasses and enums. Nothing here touches the OS.
Identifiers are ``NewType`` strings that are only constructed through the
validating parsers in :mod:`sriov.validate`.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import NewType

PciAddress = NewType("PciAddress", str)
"""Full, lower-case PCI address ``dddd:bb:ss.f``, e.g. ``0000:3b:02.0``."""

IfName = NewType("IfName", str)
"""A Linux interface name: 1-15 chars, no ``/``, ``:`` or whitespace."""

MacAddress = NewType("MacAddress", str)
"""Lower-case colon-separated MAC, e.g. ``02:00:00:00:00:01``."""

VFIO_DRIVERS = frozenset({"vfio-pci"})
UIO_DRIVERS = frozenset({"uio_pci_generic", "igb_uio"})


class DriverKind(enum.StrEnum):
    """What a VF's bound driver means to the stack."""

    KERNEL = "kernel"  # a netdev driver (iavf, igbvf, mlx5_core, ...)
    VFIO = "vfio"  # vfio-pci: DPDK/passthrough, /dev/vfio/<group>
    UIO = "uio"  # igb_uio / uio_pci_generic: DPDK, /dev/uioN
    NONE = "none"  # unbound

    @classmethod
    def of(cls, driver: str | None) -> DriverKind:
        if not driver:
            return cls.NONE
        if driver in VFIO_DRIVERS:
            return cls.VFIO
        if driver in UIO_DRIVERS:
            return cls.UIO
        return cls.KERNEL


class LinkType(enum.StrEnum):
    """Link-layer type, as the sriov-network-device-plugin ``linkTypes`` selector names it."""

    ETHER = "ether"
    INFINIBAND = "infiniband"
    UNKNOWN = "unknown"

    @classmethod
    def from_arphrd(cls, value: int) -> LinkType:
        # /sys/class/net/<if>/type: ARPHRD_ETHER = 1, ARPHRD_INFINIBAND = 32
        return {1: cls.ETHER, 32: cls.INFINIBAND}.get(value, cls.UNKNOWN)


class DeviceClass(enum.StrEnum):
    """What kind of poolable function a :class:`VirtualFunction` record describes."""

    VF = "vf"  # an SR-IOV VF of a network PF
    NIC = "nic"  # a network PCI function that is not a VF and has no VFs enabled
    ACCELERATOR = "accelerator"  # PCI class 0x12 (QAT, FPGA, ...): PF or VF
    AUX_SF = "sf"  # a subfunction on the auxiliary bus (<drv>.sf.<n>)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RdmaDevice:
    """One RDMA device (``<pci>/infiniband/<name>``) and its char devices in /dev/infiniband."""

    name: str
    """e.g. ``mlx5_0``."""
    char_devices: tuple[str, ...] = ()
    """Names under ``/dev/infiniband`` whose sysfs class entry's ``ibdev`` is this device, in
    upstream's (rdmamap's) order: ``ucmN``, ``issmN``, ``umadN``, ``uverbsN``."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class VdpaDevice:
    """The vDPA device on ``/sys/bus/vdpa`` whose parent is this PCI function."""

    name: str
    """e.g. ``vdpa0``."""
    driver: str | None
    """``vhost_vdpa``, ``virtio_vdpa`` or ``None`` (unbound)."""
    vhost_device: str | None = None
    """``vhost-vdpa-N`` (the /dev node) when bound to ``vhost_vdpa``."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class VirtualFunction:
    """A poolable device. Usually an SR-IOV VF; ``device_class`` says otherwise.

    Non-VF devices use the same record so pools, selectors and the device plugin handle
    every class alike: a NIC or an accelerator PF has ``index`` -1 and ``pf_address`` equal
    to its own address and no ``pf_netdev``; an SF has ``address``/``pf_address`` = its
    parent PCI function, ``index`` = its ``sfnum`` and ``aux_name`` = its ID.
    """

    address: PciAddress
    index: int
    """VF index N, from the PF's ``virtfnN`` link (``sfnum`` of an SF, -1 for a non-VF)."""
    pf_address: PciAddress
    pf_netdev: IfName | None
    vendor_id: str
    """Four lower-case hex digits without ``0x``, e.g. ``8086``."""
    device_id: str
    driver: str | None
    netdev: IfName | None
    """Netdev name in the host netns, ``None`` when bound to vfio/uio or moved into a pod."""
    iommu_group: int | None
    numa_node: int | None
    """``None`` when sysfs says -1 (no topology)."""
    is_rdma: bool
    link_type: LinkType
    device_class: DeviceClass = DeviceClass.VF
    aux_name: str | None = None
    """Auxiliary device name of an SF (``mlx5_core.sf.4``), its pool device ID."""
    rdma_devices: tuple[RdmaDevice, ...] = ()
    uio_device: str | None = None
    """``uioN`` (first entry of ``<pci>/uio/``) when bound to a uio driver."""
    noiommu: bool = False
    """The IOMMU group is a vfio no-IOMMU group (``iommu_group/name`` = ``vfio-noiommu``)."""
    vdpa: VdpaDevice | None = None
    acpi_index: str | None = None
    pkey: str | None = None
    """Port 1's pKey 0 (``0x....``) of the first RDMA device, InfiniBand devices only."""
    ddp_profile: str | None = None
    """Filled only when a pool uses ``ddpProfiles`` and ``ddptool`` is present."""
    default_route: bool = False
    """A netdev of this device has an IPv4 default route (upstream excludes it)."""

    @property
    def driver_kind(self) -> DriverKind:
        return DriverKind.of(self.driver)

    @property
    def id(self) -> str:
        """The device ID kubelet sees: the PCI address, or the SF's auxiliary name."""
        return self.aux_name or self.address

    @property
    def is_vf(self) -> bool:
        """A PCI VF (of a network or an accelerator PF); SFs and NICs are not."""
        return self.aux_name is None and self.index >= 0


Device = VirtualFunction
"""The preferred name in code that handles every device class."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class PhysicalFunction:
    address: PciAddress
    vendor_id: str
    device_id: str
    driver: str | None
    netdevs: tuple[IfName, ...]
    total_vfs: int
    num_vfs: int
    numa_node: int | None
    link_type: LinkType
    mtu: int | None
    vf_addresses: tuple[PciAddress, ...]
    """VF addresses ordered by VF index."""
    uplink: IfName | None = None
    """In switchdev mode: the uplink representor among ``netdevs`` (the others are VF/SF
    representors), see :mod:`sriov.switchdev`; ``None`` in legacy mode."""

    @property
    def netdev(self) -> IfName | None:
        """The PF's name (``pfNames``, the VFs' ``pf_netdev``): the uplink representor in
        switchdev mode, else the first netdev, as upstream."""
        if self.uplink is not None:
            return self.uplink
        return self.netdevs[0] if self.netdevs else None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class SkippedDevice:
    """A device discovery could not read; logged and reported, never fatal."""

    path: str
    reason: str


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Inventory:
    """Everything discovery found under one sysfs root."""

    pfs: tuple[PhysicalFunction, ...]
    vfs: tuple[VirtualFunction, ...]
    skipped: tuple[SkippedDevice, ...] = ()
    others: tuple[VirtualFunction, ...] = ()
    """Poolable devices that are not VFs of a network PF: NICs without VFs, accelerators
    (PFs and VFs of class 0x12) and auxiliary SFs."""

    @property
    def devices(self) -> tuple[VirtualFunction, ...]:
        """Every poolable device: VFs first, then the others."""
        return self.vfs + self.others

    def pf(self, address: str) -> PhysicalFunction | None:
        return next((p for p in self.pfs if p.address == address), None)

    def vf(self, address: str) -> VirtualFunction | None:
        return next((v for v in self.vfs if v.address == address), None)

    def vfs_of(self, pf_address: str) -> tuple[VirtualFunction, ...]:
        return tuple(v for v in self.vfs if v.pf_address == pf_address)


class VlanProto(enum.StrEnum):
    """VLAN protocol as sriov-cni spells it (``vlanProto``), lower-case."""

    DOT1Q = "802.1q"
    DOT1AD = "802.1ad"

    @property
    def ethertype(self) -> int:
        return 0x8100 if self is VlanProto.DOT1Q else 0x88A8

    @classmethod
    def from_ethertype(cls, value: int) -> VlanProto:
        return cls.DOT1AD if value == 0x88A8 else cls.DOT1Q


class LinkState(enum.StrEnum):
    """VF administrative link state (``IFLA_VF_LINK_STATE``)."""

    AUTO = "auto"  # 0: follow the PF
    ENABLE = "enable"  # 1
    DISABLE = "disable"  # 2

    @property
    def kernel_value(self) -> int:
        return {"auto": 0, "enable": 1, "disable": 2}[self.value]

    @classmethod
    def from_kernel(cls, value: int) -> LinkState:
        return {0: cls.AUTO, 1: cls.ENABLE, 2: cls.DISABLE}.get(value, cls.AUTO)


class VfSetting(enum.StrEnum):
    """One independently applied VF setting; also the name used in errors."""

    VLAN = "vlan"  # vlan + qos + proto travel in one attribute
    MAC = "mac"
    TX_RATE = "tx_rate"  # min + max travel in one attribute
    SPOOFCHK = "spoofchk"
    TRUST = "trust"
    LINK_STATE = "link_state"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class VfState:
    """The PF-side admin state of one VF, as read from ``IFLA_VFINFO_LIST``.

    ``None`` means the driver did not report that attribute.
    """

    index: int
    mac: MacAddress
    vlan: int = 0
    qos: int = 0
    vlan_proto: VlanProto = VlanProto.DOT1Q
    spoofchk: bool | None = None
    trust: bool | None = None
    link_state: LinkState | None = None
    min_tx_rate: int = 0
    """Mbps, 0 = no limit."""
    max_tx_rate: int = 0
    """Mbps, 0 = no limit."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class VfSettings:
    """Requested VF settings; ``None`` leaves a setting untouched (sriov-cni semantics)."""

    mac: MacAddress | None = None
    vlan: int | None = None
    qos: int | None = None
    vlan_proto: VlanProto | None = None
    spoofchk: bool | None = None
    trust: bool | None = None
    link_state: LinkState | None = None
    min_tx_rate: int | None = None
    max_tx_rate: int | None = None

    @classmethod
    def restoring(cls, state: VfState) -> VfSettings:
        """Settings that put a VF back to a snapshotted state."""
        return cls(
            mac=state.mac,
            vlan=state.vlan,
            qos=state.qos,
            vlan_proto=state.vlan_proto,
            spoofchk=state.spoofchk,
            trust=state.trust,
            link_state=state.link_state,
            min_tx_rate=state.min_tx_rate,
            max_tx_rate=state.max_tx_rate,
        )
