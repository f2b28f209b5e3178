"""The netlink layer: the only module (with ``sriov/netlink_*.py``) that imports pyroute2.

:class:`Netlink` keeps one rtnetlink socket per network namespace for its
lifetime. A netns is named by a path (``/var/run/netns/<name>`` or
``/proc/<pid>/ns/net``) or ``None`` for the namespace the process runs in.
Sockets for other namespaces are opened by a short-lived thread that
``setns()``s into the target (see :mod:`sriov.netlink_ns`); the process itself
never changes namespace. That costs ~1.7 ms per namespace versus ~11 ms for
pyroute2's ``IPRoute(netns=...)``, which forks a helper process.

A link is named by its name or, to skip the RTM_GETLINK that resolves a name, by its ifindex
(:data:`Link`): a caller that just looked the link up passes ``info.index`` on. ``delete``
addresses a named link by ``IFLA_IFNAME`` directly (one request; RTM_SETLINK cannot do that
safely: given an altname as ``IFLA_IFNAME`` it renames the link to it).

The requests a CNI attachment sends on its way in and out (create a macvlan, set
MAC/MTU/name/up, add an address, delete a link) are hand-built on a plain socket per netns
(:mod:`sriov.netlink_raw`: no pyroute2 objects or event loop per request); everything else uses
pyroute2, on a dup of that socket once the netns has one.

Every kernel refusal becomes :class:`~sriov.errors.NetlinkOpError` (or
:class:`~sriov.errors.DeviceNotFoundError` when a named link does not exist);
pyroute2 exceptions never leave this module. A ``Netlink`` object is not
thread-safe: use one per thread.
"""

from __future__ import annotations

import contextlib
import errno as E
import logging
import os
import socket
from collections.abc import Callable, Iterator
from socket import socket as RawSocket
from types import TracebackType
from typing import Any, TypeVar

from sriov.netlink_import import lean_pyroute2

lean_pyroute2()  # before the first pyroute2 import: skip its all-features package __init__
# isort: split
from pyroute2.iproute.linux import IPRoute  # noqa: E402
from pyroute2.netlink import NLM_F_ACK, NLM_F_REQUEST  # noqa: E402
from pyroute2.netlink.exceptions import NetlinkError  # noqa: E402
from pyroute2.netlink.rtnl import (  # noqa: E402
    RTM_DELLINK,
    RTM_DELLINKPROP,
    RTM_GETLINK,
    RTM_NEWLINKPROP,
    RTM_SETLINK,
)

from sriov import netlink_msg as msgs  # noqa: E402
from sriov import netlink_raw as raw_msgs  # noqa: E402
from sriov.errors import DeviceNotFoundError, NetlinkOpError, SriovError  # noqa: E402
from sriov.netlink_ns import (  # noqa: E402
    netlink_socket_in,
    netns_fd,
    new_netlink_socket,
    run_in_netns,
)
from sriov.netlink_raw import RawRtnl  # noqa: E402
from sriov.netlink_types import (  # noqa: E402
    AddressInfo,
    IpvlanMode,
    LinkInfo,
    MacvlanMode,
    RouteInfo,
)
from sriov.types import VfSetting, VfSettings, VfState, VlanProto  # noqa: E402
from sriov.validate import ifname as valid_ifname  # noqa: E402
from sriov.validate import mac_address  # noqa: E402

__all__ = [
    "AddressInfo", "IpvlanMode", "Link", "LinkInfo", "MacvlanMode", "Netlink", "RouteInfo",
    "netns_fd", "run_in_netns",
]

log = logging.getLogger(__name__)
T = TypeVar("T")
_ACK = NLM_F_REQUEST | NLM_F_ACK
Link = str | int
"""A link by name, or by ifindex (no RTM_GETLINK needed to resolve it)."""


def _where(netns: str | None) -> str:
    return f" in netns {netns}" if netns else ""


def _label(link: Link) -> str:
    return f"ifindex {link}" if isinstance(link, int) else link


def _own_netns_index(name: str) -> int | None:
    """ifindex of ``name`` in this process's netns by ioctl (no RTM_GETLINK to encode and parse);
    None when it has none under that name (an altname: ask netlink)."""
    try:
        return socket.if_nametoindex(name)
    except OSError:
        return None


@contextlib.contextmanager
def kernel_op(op: str, target: str) -> Iterator[None]:
    """Translate pyroute2/socket failures of one request into ``NetlinkOpError``."""
    try:
        yield
    except SriovError:
        raise
    except NetlinkError as e:
        raise NetlinkOpError(op, target, e.code) from e
    except OSError as e:
        raise NetlinkOpError(op, target, e.errno or E.EIO) from e
    except (ValueError, KeyError, TypeError) as e:  # pyroute2 refusing to encode a request
        raise NetlinkOpError(op, target, E.EINVAL, f"request not encodable: {e}") from e


class Netlink:
    """rtnetlink operations on links, addresses, routes and SR-IOV VFs."""

    def __init__(self, socket_factory: Callable[[str | None], IPRoute] | None = None) -> None:
        self._open = socket_factory or self._open_socket
        self._default_sockets = socket_factory is None
        self._sockets: dict[str | None, IPRoute] = {}
        self._raw: dict[str | None, RawRtnl] = {}
        """Plain sockets for the hand-built hot-path requests (:mod:`sriov.netlink_raw`); a
        netns's ``IPRoute``, when one is needed, wraps a dup of the same socket."""

    # -- lifecycle -------------------------------------------------------------
    @staticmethod
    def _open_socket(netns: str | None) -> IPRoute:
        if netns is None:
            return Netlink._wrap(None)
        return Netlink._wrap(netlink_socket_in(netns))

    @staticmethod
    def _wrap(sock: RawSocket | None) -> IPRoute:
        ipr = IPRoute(groups=0) if sock is None else IPRoute(fileno=sock.detach(), groups=0)
        # pyroute2 0.9.7's sync nlm_request() reads status['nlm_generator'], which
        # IPRoute never sets (KeyError); we always want a materialised tuple.
        ipr.asyncore.status["nlm_generator"] = False
        return ipr

    def _ipr(self, netns: str | None) -> IPRoute:
        ipr = self._sockets.get(netns)
        if ipr is None:
            with kernel_op("open netlink socket", netns or "host netns"):
                raw = self._raw.get(netns)
                # a socket already in that netns: no setns thread, just a second handle on it
                ipr = self._wrap(socket.socket(fileno=os.dup(raw.fileno()))) if raw else \
                    self._open(netns)
            self._sockets[netns] = ipr
        return ipr

    def _rtnl(self, netns: str | None) -> RawRtnl | None:
        """The plain socket of ``netns`` (opened on first use); None with an injected socket
        factory (tests), whose requests all go through it."""
        if not self._default_sockets:
            return None
        raw = self._raw.get(netns)
        if raw is None:
            with kernel_op("open netlink socket", netns or "host netns"):
                raw = RawRtnl(new_netlink_socket() if netns is None else netlink_socket_in(netns))
            self._raw[netns] = raw
        return raw

    def _send(self, netns: str | None, op: str, link: Link, req: raw_msgs.Request,
              fallback: Callable[[], object]) -> None:
        """One hand-built request (``fallback``: the pyroute2 one, without a plain socket); a
        missing named link is :class:`DeviceNotFoundError`, as if it had been looked up."""
        rtnl = self._rtnl(netns)
        if rtnl is None:
            fallback()
            return
        try:
            with kernel_op(op, _label(link) + _where(netns)):
                rtnl.request(req)
        except NetlinkOpError as e:
            if e.errno == E.ENODEV and isinstance(link, str):
                raise DeviceNotFoundError("netdev", link, f"no such interface{_where(netns)}"
                                          if netns else "") from e
            raise

    def forget_netns(self, netns: str) -> None:
        """Close the cached sockets of a namespace that is going away."""
        ipr = self._sockets.pop(netns, None)
        if ipr is not None:
            ipr.close()
        raw = self._raw.pop(netns, None)
        if raw is not None:
            raw.close()

    def close(self) -> None:
        for ipr in self._sockets.values():
            with contextlib.suppress(Exception):
                ipr.close()
        self._sockets.clear()
        for raw in self._raw.values():
            raw.close()
        self._raw.clear()

    def __enter__(self) -> Netlink:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _request(self, netns: str | None, op: str, target: str, msg: Any, msg_type: int,
                 flags: int = _ACK) -> tuple[Any, ...]:
        with kernel_op(op, target + _where(netns)):
            return tuple(self._ipr(netns).nlm_request(msg, msg_type=msg_type, msg_flags=flags))

    def _link_call(self, netns: str | None, op: str, target: str, command: str, **kw: Any) -> Any:
        with kernel_op(op, target + _where(netns)):
            return self._ipr(netns).link(command, **kw)

    # -- lookups ---------------------------------------------------------------
    def link(self, name: str, netns: str | None = None) -> LinkInfo | None:
        """The link called ``name`` (or one of its altnames), ``None`` if absent."""
        try:
            reply = self._request(netns, "get link", name, msgs.getlink_request(name=name),
                                  RTM_GETLINK, NLM_F_REQUEST)
        except NetlinkOpError as e:
            if e.errno == E.ENODEV:
                return None
            raise
        return msgs.parse_link(reply[0]) if reply else None

    def link_by_index(self, index: int, netns: str | None = None, *,
                      target_nsid: int | None = None) -> LinkInfo | None:
        """Link ``index``; with ``target_nsid`` (e.g. a veth's ``netns_id``) in that peer netns."""
        where = f"index {index}" + (f" in nsid {target_nsid}" if target_nsid is not None else "")
        request = msgs.getlink_request(index=index, target_nsid=target_nsid)
        try:
            reply = self._request(netns, "get link", where, request, RTM_GETLINK, NLM_F_REQUEST)
        except NetlinkOpError as e:
            if e.errno == E.ENODEV:
                return None
            raise
        return msgs.parse_link(reply[0]) if reply else None

    def links(self, netns: str | None = None) -> tuple[LinkInfo, ...]:
        with kernel_op("list links", "all" + _where(netns)):
            return tuple(msgs.parse_link(m) for m in self._ipr(netns).link("dump"))

    def index(self, name: Link, netns: str | None = None) -> int:
        """Interface index of ``name``; :class:`DeviceNotFoundError` if there is none."""
        if isinstance(name, int):
            return name
        info = self.link(name, netns)
        if info is None:
            raise DeviceNotFoundError(
                "netdev", name, f"no such interface{_where(netns)}" if netns else ""
            )
        return info.index

    # -- link attributes ---------------------------------------------------------
    def _set(self, name: Link, netns: str | None, op: str, target: str = "", **kw: Any) -> None:
        idx = self.index(name, netns)
        self._link_call(netns, op, target or _label(name), "set", index=idx, **kw)

    def _by_name_or_index(self, link: Link, netns: str | None, op: str, msg: Any,
                          msg_type: int) -> None:
        """One request addressed by ifindex or ``IFLA_IFNAME``; a missing named link is
        :class:`DeviceNotFoundError`, as if it had been looked up first."""
        try:
            self._request(netns, op, _label(link), msg, msg_type)
        except NetlinkOpError as e:
            if e.errno == E.ENODEV and isinstance(link, str):
                raise DeviceNotFoundError("netdev", link, f"no such interface{_where(netns)}"
                                          if netns else "") from e
            raise

    def _set_updown(self, link: Link, netns: str | None, up: bool) -> None:
        # by index only: RTM_SETLINK addressed by IFLA_IFNAME renames a link found by an altname
        idx = self.index(link, netns)
        op = "set link up" if up else "set link down"
        self._send(netns, op, link, raw_msgs.setlink_request(idx, up=up),
                   lambda: self._request(netns, op, _label(link),
                                         msgs.updown_request(up=up, index=idx), RTM_SETLINK))

    def set_up(self, name: Link, netns: str | None = None) -> None:
        self._set_updown(name, netns, True)

    def set_down(self, name: Link, netns: str | None = None) -> None:
        self._set_updown(name, netns, False)

    def rename(self, name: Link, new: str, netns: str | None = None) -> None:
        """Rename a link (kernels before 6.x answer EBUSY while it is up: set it down first)."""
        self._set(name, netns, "rename link", f"{_label(name)} to {new}", ifname=valid_ifname(new))

    def set_mac(self, name: Link, mac: str, netns: str | None = None) -> None:
        self._set(name, netns, "set MAC", address=mac_address(mac))

    def set_mtu(self, name: Link, mtu: int, netns: str | None = None) -> None:
        self._set(name, netns, "set MTU", mtu=mtu)

    def set_link(self, name: Link, netns: str | None = None, *, mac: str | None = None,
                 mtu: int | None = None, new_name: str | None = None,
                 up: bool | None = None) -> None:
        """Set any of MAC, MTU, name and admin state with one request (kernel order: MAC, MTU,
        name, up). Addressed by ifindex, so ``new_name`` renames (never looks up) the link.

        Not atomic: when the kernel refuses one of them, the ones before it stay applied."""
        if mac is None and mtu is None and new_name is None and up is None:
            return
        idx = self.index(name, netns)
        what = ", ".join(f"{k} {v}" for k, v in (("MAC", mac), ("MTU", mtu), ("name", new_name),
                                                  ("up", up)) if v is not None)
        fields: dict[str, Any] = {"mac": mac_address(mac) if mac else None, "mtu": mtu,
                                  "name": valid_ifname(new_name) if new_name else None, "up": up}
        self._send(netns, f"set {what}", name, raw_msgs.setlink_request(idx, **fields),
                   lambda: self._request(netns, f"set {what}", _label(name),
                                         msgs.setlink_request(index=idx, **fields), RTM_SETLINK))

    def set_alias(self, name: Link, alias: str, netns: str | None = None) -> None:
        """Set ``IFLA_IFALIAS``; an empty string clears it."""
        self._set(name, netns, "set alias", IFLA_IFALIAS=alias)

    def add_altname(self, name: str, altname: str, netns: str | None = None) -> None:
        idx = self.index(name, netns)
        self._request(netns, f"add altname {altname}", name, msgs.altname_request(idx, altname),
                      RTM_NEWLINKPROP)

    def del_altname(self, name: str, altname: str, netns: str | None = None) -> None:
        idx = self.index(name, netns)
        self._request(netns, f"delete altname {altname}", name, msgs.altname_request(idx, altname),
                      RTM_DELLINKPROP)

    def set_master(self, name: str, master: str | None, netns: str | None = None) -> None:
        """Enslave ``name`` to bridge ``master``; ``None`` releases it."""
        master_idx = self.index(master, netns) if master else 0
        self._set(name, netns, f"set master {master or 'none'}", master=master_idx)

    def move_to_netns(self, name: Link, src_netns: str | None, dst_netns: str | None,
                      new_name: str | None = None) -> None:
        """Move a link to ``dst_netns``, renaming it in the same request if ``new_name``.

        Not atomic: the kernel moves first and renames after, so on EEXIST for ``new_name`` the
        link may already be in ``dst_netns`` under its old name."""
        idx = self.index(name, src_netns)
        extra = {"ifname": valid_ifname(new_name)} if new_name else {}
        with netns_fd(dst_netns) as fd:
            self._link_call(
                src_netns,
                f"move link to netns {dst_netns or 'host'}",
                _label(name),
                "set",
                index=idx,
                net_ns_fd=fd,
                **extra,
            )

    def delete(self, name: Link, netns: str | None = None) -> None:
        by: dict[str, Any] = {"index": name} if isinstance(name, int) else {"name": name}
        self._send(netns, "delete link", name, raw_msgs.dellink_request(**by),
                   lambda: self._by_name_or_index(name, netns, "delete link",
                                                  msgs.getlink_request(**by), RTM_DELLINK))

    def delete_if_exists(self, name: Link, netns: str | None = None) -> bool:
        """Delete ``name``; ``False`` if it was already gone (ENODEV tolerated)."""
        try:
            self.delete(name, netns)
        except DeviceNotFoundError:
            return False
        except NetlinkOpError as e:
            if e.errno != E.ENODEV:
                raise
            return False
        return True

    # -- creation ----------------------------------------------------------------
    def create_veth(
        self, a: str, b: str, b_netns: str | None = None, netns: str | None = None
    ) -> None:
        """Create veth pair ``a``<->``b`` in ``netns``; ``b`` lands in ``b_netns`` if given."""
        peer: dict[str, Any] = {"ifname": valid_ifname(b)}
        valid_ifname(a)
        with contextlib.ExitStack() as stack:
            if b_netns is not None:
                peer["net_ns_fd"] = stack.enter_context(netns_fd(b_netns))
            self._link_call(
                netns, "create veth", f"{a}/{b}", "add", ifname=a, kind="veth", peer=peer
            )

    def create_bridge(
        self, name: str, vlan_filtering: bool = False, netns: str | None = None
    ) -> None:
        """Create a bridge; ``vlan_filtering`` needs CONFIG_BRIDGE_VLAN_FILTERING (EOPNOTSUPP)."""
        extra = {"br_vlan_filtering": 1} if vlan_filtering else {}
        valid_ifname(name)
        self._link_call(netns, "create bridge", name, "add", ifname=name, kind="bridge", **extra)

    def _create_on_master(self, op: str, name: str, master: str, master_netns: str | None,
                          netns_dst: str | None, **kw: Any) -> None:
        valid_ifname(name)
        master_idx = _own_netns_index(master) if master_netns is None else None
        if master_idx is None:
            master_idx = self.index(master, master_netns)
        attrs = {k: v for k, v in kw.items() if v is not None}
        if "address" in attrs:
            attrs["address"] = mac_address(attrs["address"])
        with contextlib.ExitStack() as stack:
            if netns_dst is not None:
                attrs["net_ns_fd"] = stack.enter_context(netns_fd(netns_dst))
            self._link_call(master_netns, op, f"{name} on {master}", "add", ifname=name,
                            link=master_idx, **attrs)

    def create_macvlan(self, name: str, master: str, mode: MacvlanMode | str, netns_dst: str | None,
                       mtu: int | None = None, mac: str | None = None,
                       master_netns: str | None = None) -> None:
        """Create macvlan ``name`` on ``master`` so it lands directly in ``netns_dst``."""
        if self._default_sockets:
            valid_ifname(name)
            master_idx = _own_netns_index(master) if master_netns is None else None
            if master_idx is None:
                master_idx = self.index(master, master_netns)
            with contextlib.ExitStack() as stack:
                fd = stack.enter_context(netns_fd(netns_dst)) if netns_dst is not None else None
                self._send(master_netns, "create macvlan", f"{name} on {master}",
                           raw_msgs.macvlan_request(
                               name, master_idx, MacvlanMode(mode).kernel_value, netns_fd=fd,
                               mtu=mtu, mac=mac_address(mac) if mac else None),
                           lambda: None)
            return
        self._create_on_master("create macvlan", name, master, master_netns, netns_dst,
                               kind="macvlan", macvlan_mode=MacvlanMode(mode).kernel_value,
                               mtu=mtu, address=mac)

    def create_ipvlan(self, name: str, master: str, mode: IpvlanMode | str, netns_dst: str | None,
                      mtu: int | None = None, master_netns: str | None = None) -> None:
        self._create_on_master("create ipvlan", name, master, master_netns, netns_dst,
                               kind="ipvlan", ipvlan_mode=IpvlanMode(mode).kernel_value, mtu=mtu)

    def create_vlan(self, name: str, master: str, vlan_id: int,
                    proto: VlanProto | str = VlanProto.DOT1Q, netns: str | None = None,
                    netns_dst: str | None = None, mtu: int | None = None) -> None:
        """Create an 802.1Q/802.1ad sub-interface ``name`` of ``master``."""
        self._create_on_master("create vlan", name, master, netns, netns_dst, kind="vlan",
                               vlan_id=vlan_id, vlan_protocol=VlanProto(proto).ethertype, mtu=mtu)

    # -- bridge port VLANs ---------------------------------------------------------
    def bridge_vlan_set(self, port: str, vid: int, *, pvid: bool = True, untagged: bool = True,
                        netns: str | None = None) -> None:
        """Add VLAN ``vid`` to a bridge port (as PVID/untagged by default)."""
        idx = self.index(port, netns)
        self._request(netns, f"add bridge vlan {vid}", port,
                      msgs.bridge_vlan_request(idx, vid, pvid=pvid, untagged=untagged), RTM_SETLINK)

    def bridge_vlan_del(self, port: str, vid: int, netns: str | None = None) -> None:
        idx = self.index(port, netns)
        self._request(netns, f"delete bridge vlan {vid}", port,
                      msgs.bridge_vlan_request(idx, vid, pvid=False, untagged=False), RTM_DELLINK)

    # -- addresses and routes ----------------------------------------------------
    def add_address(self, name: Link, cidr: str, netns: str | None = None) -> None:
        idx = self.index(name, netns)
        address, _, prefix = cidr.partition("/")

        def with_pyroute2() -> None:
            with kernel_op(f"add address {cidr}", _label(name) + _where(netns)):
                self._ipr(netns).addr("add", index=idx, address=address,
                                      prefixlen=int(prefix or (128 if ":" in address else 32)))

        try:
            req = raw_msgs.newaddr_request(idx, cidr)
        except ValueError as e:
            raise NetlinkOpError(f"add address {cidr}", _label(name), E.EINVAL,
                                 f"request not encodable: {e}") from e
        self._send(netns, f"add address {cidr}", name, req, with_pyroute2)

    def addresses(self, name: str, netns: str | None = None) -> tuple[AddressInfo, ...]:
        idx = self.index(name, netns)
        with kernel_op("list addresses", name + _where(netns)):
            return tuple(msgs.parse_address(m) for m in self._ipr(netns).addr("dump", index=idx))

    def flush_addresses(self, name: str, netns: str | None = None) -> None:
        idx = self.index(name, netns)
        with kernel_op("flush addresses", name + _where(netns)):
            self._ipr(netns).flush_addr(index=idx)

    def add_route(self, dst: str | None, gw: str | None = None, dev: Link | None = None,
                  netns: str | None = None, *, table: int | None = None,
                  metric: int | None = None) -> None:
        """Add a route; ``dst`` ``None`` or ``"default"`` is the default route."""
        spec: dict[str, Any] = {"dst": dst if dst and dst != "default" else
                                ("::/0" if gw and ":" in gw else "0.0.0.0/0")}
        if gw:
            spec["gateway"] = gw
        if dev is not None and dev != "":
            spec["oif"] = self.index(dev, netns)
        if table is not None:
            spec["table"] = table
        if metric is not None:
            spec["priority"] = metric
        target = _label(dev) if dev else gw or ""
        with kernel_op(f"add route {spec['dst']}", target + _where(netns)):
            self._ipr(netns).route("add", **spec)

    def routes(self, netns: str | None = None, family: int = 0) -> tuple[RouteInfo, ...]:
        """Routes of the main table (IPv4 and IPv6 unless ``family`` narrows it)."""
        with kernel_op("list routes", "main table" + _where(netns)):
            dump = (
                self._ipr(netns).route("dump", family=family)
                if family
                else self._ipr(netns).route("dump")
            )
            return tuple(r for r in (msgs.parse_route(m) for m in dump) if r.table == 254)

    # -- SR-IOV VFs ----------------------------------------------------------------
    def vf_states(self, pf: str, netns: str | None = None) -> tuple[VfState, ...]:
        """PF-side admin state of every VF of ``pf`` (empty for a non-SR-IOV link)."""
        request = msgs.getlink_request(name=pf, ext_mask=msgs.RTEXT_FILTER_VF)
        try:
            reply = self._request(netns, "read VF info", pf, request, RTM_GETLINK, NLM_F_REQUEST)
        except NetlinkOpError as e:
            if e.errno == E.ENODEV:
                raise DeviceNotFoundError("netdev", pf) from e
            raise
        return msgs.parse_vf_states(reply[0]) if reply else ()

    def set_vf(self, pf: str, index: int, setting: VfSetting, settings: VfSettings,
               netns: str | None = None) -> None:
        """Apply exactly one VF setting with one RTM_SETLINK request."""
        pf_index = self.index(pf, netns)
        request = msgs.set_vf_request(pf_index, index, setting, settings)
        self._request(netns, f"set VF {setting}", f"{pf} vf {index}", request, RTM_SETLINK)

    # -- helpers -----------------------------------------------------------------
    def run_in_netns(self, netns: str | None, fn: Callable[[], T]) -> T:
        """Run ``fn`` in a thread joined to ``netns`` (for /proc/sys writes); returns its result.

        When this object has no socket for ``netns`` yet, the same thread also opens it (one
        setns thread instead of two: the next request in ``netns`` needs no thread).
        """
        if netns is None or netns in self._raw or netns in self._sockets \
                or not self._default_sockets:
            return run_in_netns(netns, fn)

        def open_and_run() -> tuple[RawSocket, T]:
            sock = new_netlink_socket()
            try:
                return sock, fn()
            except BaseException:
                sock.close()
                raise

        sock, result = run_in_netns(netns, open_and_run)
        self._raw[netns] = RawRtnl(sock)
        return result
