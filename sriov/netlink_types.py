"""Value objects returned by :class:`sriov.netlink.Netlink`.

Pure (standard library only) so callers can type against them without
importing pyroute2.
"""

from __future__ import annotations

import dataclasses
import enum

from sriov.types import IfName, MacAddress


class MacvlanMode(enum.StrEnum):
    """``IFLA_MACVLAN_MODE``, as the CNI ``mode`` key spells it."""

    PRIVATE = "private"  # 1
    VEPA = "vepa"  # 2
    BRIDGE = "bridge"  # 4
    PASSTHRU = "passthru"  # 8
    SOURCE = "source"  # 16

    @property
    def kernel_value(self) -> int:
        return {"private": 1, "vepa": 2, "bridge": 4, "passthru": 8, "source": 16}[self.value]


class IpvlanMode(enum.StrEnum):
    """``IFLA_IPVLAN_MODE``."""

    L2 = "l2"  # 0
    L3 = "l3"  # 1
    L3S = "l3s"  # 2

    @property
    def kernel_value(self) -> int:
        return {"l2": 0, "l3": 1, "l3s": 2}[self.value]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class LinkInfo:
    """One netdev as ``RTM_GETLINK`` reports it."""

    index: int
    name: IfName
    kind: str | None
    """``IFLA_INFO_KIND`` (veth, macvlan, bridge, ...); ``None`` for physical NICs."""
    mac: MacAddress | None
    mtu: int
    up: bool
    """Administratively up (``IFF_UP``)."""
    carrier: bool
    """``IFLA_CARRIER`` (falls back to ``IFF_LOWER_UP``)."""
    operstate: str
    """``IFLA_OPERSTATE`` as a lower-case word: up, down, lowerlayerdown, unknown, ..."""
    alias: str | None
    altnames: tuple[str, ...]
    master_index: int | None
    link_index: int | None
    """``IFLA_LINK``: the lower device (macvlan master, veth peer index)."""
    netns_id: int | None
    """``IFLA_LINK_NETNSID``: the nsid the lower device lives in, if it is another netns."""
    parent_bus: str | None
    """``IFLA_PARENT_DEV_BUS_NAME``, e.g. ``pci``."""
    parent_dev: str | None
    """``IFLA_PARENT_DEV_NAME``, e.g. a PCI address ``0000:3b:02.0``."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class AddressInfo:
    """One IP address on a link."""

    index: int
    family: int
    """``socket.AF_INET`` or ``socket.AF_INET6``."""
    address: str
    prefixlen: int

    @property
    def cidr(self) -> str:
        return f"{self.address}/{self.prefixlen}"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RouteInfo:
    """One route of the main table."""

    family: int
    dst: str | None
    """``None`` means the default route; otherwise ``addr/len``."""
    gateway: str | None
    oif: int | None
    table: int
    priority: int | None
    scope: int
