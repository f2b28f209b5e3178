"""Pure builders and parsers of rtnetlink messages (pyroute2 message classes, no I/O).

The one non-trivial piece is :class:`VfLinkMsg`: pyroute2 0.9.7 packs
``IFLA_VF_VLAN_INFO`` as 14 bytes (``vf, vlan, qos, proto``) while the kernel's
``struct ifla_vf_vlan_info`` is 16 bytes (``__be16 vlan_proto`` plus 2 bytes of
tail padding), and the kernel's policy answers EINVAL for the short attribute.
We subclass the nested nla classes locally instead of patching pyroute2.
"""

from __future__ import annotations

import socket
from typing import Any

from pyroute2.netlink.rtnl.ifinfmsg import IFF_LOWER_UP, IFF_UP, ifinfmsg

from sriov.netlink_types import AddressInfo, LinkInfo, RouteInfo
from sriov.types import IfName, LinkState, MacAddress, VfSetting, VfSettings, VfState, VlanProto
from sriov.validate import admin_mac

RTEXT_FILTER_VF = 1
AF_BRIDGE = 7
BRIDGE_VLAN_INFO_PVID = 0x2
BRIDGE_VLAN_INFO_UNTAGGED = 0x4
_UNREPORTED = 0xFFFFFFFF  # the kernel fills spoofchk/trust with -1 when the driver is silent


class _OwnNlaCache:
    """Give a pyroute2 message subclass its own compiled-attribute-map cache.

    pyroute2 caches the compiled ``nla_map`` (name -> nested class) on the class, in
    name-mangled attributes read through the MRO. Without resetting them, a subclass inherits
    its parent's cache once the parent was compiled (any link dump does that) and encodes with
    the parent's nested classes, i.e. the 14-byte struct again.
    """

    _nlmsg_base__compiled_nla = False
    _nlmsg_base__t_nla_map = None
    _nlmsg_base__r_nla_map = None


class VfLinkMsg(_OwnNlaCache, ifinfmsg):
    """``ifinfmsg`` whose ``IFLA_VF_VLAN_INFO`` matches the kernel's 16-byte struct."""

    class vflist(_OwnNlaCache, ifinfmsg.vflist):
        class vfinfo(_OwnNlaCache, ifinfmsg.vflist.vfinfo):
            class vf_vlist(_OwnNlaCache, ifinfmsg.vflist.vfinfo.vf_vlist):
                class ivvi(ifinfmsg.vflist.vfinfo.vf_vlist.ivvi):
                    fields = (
                        ("vf", "I"),
                        ("vlan", "I"),
                        ("qos", "I"),
                        ("proto", ">H"),
                        ("__pad", "2x"),
                    )


def getlink_request(*, index: int = 0, name: str | None = None, ext_mask: int = 0,
                    target_nsid: int | None = None) -> ifinfmsg:
    """RTM_GETLINK body; ``target_nsid`` asks about a link in the netns with that nsid."""
    msg = ifinfmsg()
    msg["index"] = index
    attrs: list[tuple[str, Any]] = []
    if name is not None:
        # The kernel resolves IFLA_IFNAME against altnames too, but it only holds
        # IFNAMSIZ bytes; longer altnames must be asked for as IFLA_ALT_IFNAME.
        attrs.append(("IFLA_IFNAME" if len(name.encode()) < 16 else "IFLA_ALT_IFNAME", name))
    if ext_mask:
        attrs.append(("IFLA_EXT_MASK", ext_mask))
    if target_nsid is not None:
        attrs.append(("IFLA_IF_NETNSID", target_nsid))
    msg["attrs"] = attrs
    return msg


def updown_request(*, up: bool, index: int) -> ifinfmsg:
    """RTM_SETLINK body changing only ``IFF_UP`` of link ``index``."""
    msg = getlink_request(index=index)
    msg["flags"] = IFF_UP if up else 0
    msg["change"] = IFF_UP
    return msg


def setlink_request(*, index: int, mac: str | None = None, mtu: int | None = None,
                    name: str | None = None, up: bool | None = None) -> ifinfmsg:
    """One RTM_SETLINK body for link ``index``: MAC, MTU, name and ``IFF_UP`` together.

    The kernel applies them in that order (``do_setlink``: address, MTU, name, then flags), as
    separate requests would, in one round trip instead of several."""
    msg = getlink_request(index=index)
    attrs = msg["attrs"]
    if mac is not None:
        attrs.append(("IFLA_ADDRESS", mac))
    if mtu is not None:
        attrs.append(("IFLA_MTU", mtu))
    if name is not None:
        attrs.append(("IFLA_IFNAME", name))
    if up is not None:
        msg["flags"] = IFF_UP if up else 0
        msg["change"] = IFF_UP
    return msg


def altname_request(index: int, altname: str) -> ifinfmsg:
    """Body of RTM_NEWLINKPROP / RTM_DELLINKPROP for one alternative name."""
    msg = ifinfmsg()
    msg["index"] = index
    msg["attrs"] = [("IFLA_PROP_LIST", {"attrs": [("IFLA_ALT_IFNAME", altname)]})]
    return msg


def bridge_vlan_request(index: int, vid: int, *, pvid: bool, untagged: bool) -> ifinfmsg:
    """Body of RTM_SETLINK/RTM_DELLINK (family AF_BRIDGE) for one port VLAN entry."""
    flags = (BRIDGE_VLAN_INFO_PVID if pvid else 0) | (BRIDGE_VLAN_INFO_UNTAGGED if untagged else 0)
    msg = ifinfmsg()
    msg["family"] = AF_BRIDGE
    msg["index"] = index
    msg["attrs"] = [
        ("IFLA_AF_SPEC", {"attrs": [("IFLA_BRIDGE_VLAN_INFO", {"flags": flags, "vid": vid})]})
    ]
    return msg


def vf_attribute(vf: int, setting: VfSetting, settings: VfSettings) -> tuple[str, Any]:
    """The single ``IFLA_VF_*`` attribute that applies ``setting`` from ``settings``."""
    match setting:
        case VfSetting.MAC:
            return ("IFLA_VF_MAC", {"vf": vf, "mac": admin_mac(_required(settings.mac, setting))})
        case VfSetting.VLAN:
            vlan = _required(settings.vlan, setting)
            qos = settings.qos or 0
            if settings.vlan_proto is None:
                return ("IFLA_VF_VLAN", {"vf": vf, "vlan": vlan, "qos": qos})
            info = {"vf": vf, "vlan": vlan, "qos": qos, "proto": settings.vlan_proto.ethertype}
            return ("IFLA_VF_VLAN_LIST", {"attrs": [("IFLA_VF_VLAN_INFO", info)]})
        case VfSetting.TX_RATE:
            if settings.min_tx_rate is None and settings.max_tx_rate is None:
                raise ValueError("tx_rate needs min_tx_rate or max_tx_rate")
            rate = {
                "vf": vf,
                "min_tx_rate": settings.min_tx_rate or 0,
                "max_tx_rate": settings.max_tx_rate or 0,
            }
            return ("IFLA_VF_RATE", rate)
        case VfSetting.SPOOFCHK:
            return (
                "IFLA_VF_SPOOFCHK",
                {"vf": vf, "spoofchk": int(_required(settings.spoofchk, setting))},
            )
        case VfSetting.TRUST:
            return ("IFLA_VF_TRUST", {"vf": vf, "trust": int(_required(settings.trust, setting))})
        case VfSetting.LINK_STATE:
            state = _required(settings.link_state, setting)
            return ("IFLA_VF_LINK_STATE", {"vf": vf, "link_state": state.kernel_value})
    raise ValueError(f"unknown VF setting {setting!r}")


def _required(value: Any, setting: VfSetting) -> Any:
    if value is None:
        raise ValueError(f"VF setting {setting} requested but its value is None")
    return value


def set_vf_request(pf_index: int, vf: int, setting: VfSetting, settings: VfSettings) -> VfLinkMsg:
    """RTM_SETLINK body carrying exactly one VF attribute."""
    msg = VfLinkMsg()
    msg["index"] = pf_index
    vfinfo = {"attrs": [vf_attribute(vf, setting, settings)]}
    msg["attrs"] = [("IFLA_VFINFO_LIST", {"attrs": [("IFLA_VF_INFO", vfinfo)]})]
    return msg


def parse_vf_states(msg: Any) -> tuple[VfState, ...]:
    """VF admin states from an RTM_NEWLINK message that carries ``IFLA_VFINFO_LIST``."""
    vflist = msg.get_attr("IFLA_VFINFO_LIST")
    if vflist is None:
        return ()
    states = [_parse_vfinfo(info) for info in vflist.get_attrs("IFLA_VF_INFO")]
    return tuple(sorted(states, key=lambda s: s.index))


def _flag(value: int | None) -> bool | None:
    if value is None or value == _UNREPORTED:
        return None
    return bool(value)


def _parse_vfinfo(info: Any) -> VfState:
    mac = info.get_attr("IFLA_VF_MAC")
    vlan = info.get_attr("IFLA_VF_VLAN") or {}
    rate = info.get_attr("IFLA_VF_RATE")
    spoof = info.get_attr("IFLA_VF_SPOOFCHK")
    trust = info.get_attr("IFLA_VF_TRUST")
    link_state = info.get_attr("IFLA_VF_LINK_STATE")
    proto = VlanProto.DOT1Q
    vlist = info.get_attr("IFLA_VF_VLAN_LIST")
    if vlist is not None:
        first = vlist.get_attr("IFLA_VF_VLAN_INFO")
        if first is not None and first.get("proto"):
            proto = VlanProto.from_ethertype(first["proto"])
    if rate is not None:
        min_rate, max_rate = rate["min_tx_rate"], rate["max_tx_rate"]
    else:
        tx = info.get_attr("IFLA_VF_TX_RATE")
        min_rate, max_rate = 0, (tx["tx_rate"] if tx is not None else 0)
    return VfState(
        index=mac["vf"] if mac is not None else vlan.get("vf", 0),
        mac=MacAddress(mac["mac"] if mac is not None else "00:00:00:00:00:00"),
        vlan=vlan.get("vlan", 0),
        qos=vlan.get("qos", 0),
        vlan_proto=proto,
        spoofchk=_flag(spoof["spoofchk"]) if spoof is not None else None,
        trust=_flag(trust["trust"]) if trust is not None else None,
        link_state=LinkState.from_kernel(link_state["link_state"])
        if link_state is not None
        else None,
        min_tx_rate=min_rate,
        max_tx_rate=max_rate,
    )


def parse_link(msg: Any) -> LinkInfo:
    linkinfo = msg.get_attr("IFLA_LINKINFO")
    proplist = msg.get_attr("IFLA_PROP_LIST")
    carrier = msg.get_attr("IFLA_CARRIER")
    flags = msg["flags"]
    master = msg.get_attr("IFLA_MASTER")
    link = msg.get_attr("IFLA_LINK")
    return LinkInfo(
        index=msg["index"],
        name=IfName(msg.get_attr("IFLA_IFNAME")),
        kind=linkinfo.get_attr("IFLA_INFO_KIND") if linkinfo is not None else None,
        mac=_mac_or_none(msg.get_attr("IFLA_ADDRESS")),
        mtu=msg.get_attr("IFLA_MTU") or 0,
        up=bool(flags & IFF_UP),
        carrier=bool(carrier) if carrier is not None else bool(flags & IFF_LOWER_UP),
        operstate=str(msg.get_attr("IFLA_OPERSTATE") or "unknown").lower(),
        alias=msg.get_attr("IFLA_IFALIAS") or None,
        altnames=tuple(proplist.altnames()) if proplist is not None else (),
        master_index=master or None,
        link_index=link or None,
        netns_id=msg.get_attr("IFLA_LINK_NETNSID"),
        parent_bus=msg.get_attr("IFLA_PARENT_DEV_BUS_NAME"),
        parent_dev=msg.get_attr("IFLA_PARENT_DEV_NAME"),
    )


def _mac_or_none(value: str | None) -> MacAddress | None:
    if not value or len(value) != 17:
        return None
    return MacAddress(value.lower())


def parse_address(msg: Any) -> AddressInfo:
    address = msg.get_attr("IFA_LOCAL") or msg.get_attr("IFA_ADDRESS")
    return AddressInfo(
        index=msg["index"], family=msg["family"], address=address, prefixlen=msg["prefixlen"]
    )


def parse_route(msg: Any) -> RouteInfo:
    dst = msg.get_attr("RTA_DST")
    return RouteInfo(
        family=msg["family"],
        dst=f"{dst}/{msg['dst_len']}" if dst is not None else None,
        gateway=msg.get_attr("RTA_GATEWAY"),
        oif=msg.get_attr("RTA_OIF"),
        table=msg.get_attr("RTA_TABLE") or msg["table"],
        priority=msg.get_attr("RTA_PRIORITY"),
        scope=msg["scope"],
    )


def family_of(cidr: str) -> int:
    return socket.AF_INET6 if ":" in cidr else socket.AF_INET
