"""Hand-built rtnetlink requests for the CNI hot path, on a plain ``NETLINK_ROUTE`` socket.

pyroute2 costs 0.2-0.5 ms of Python per request (message objects, an asyncio loop run per
call) and ~1 ms to wrap a socket in an ``IPRoute``; under a burst of ADDs that time is held
under the GIL and queues every other request of the process. The few requests an attachment
sends on its way in and out - create a macvlan, set MAC/MTU/name/up, add an address, delete a
link - are built here as bytes and their ack read directly (standard library only). Everything
else (dumps, lookups that parse replies, VF settings, routes) stays on pyroute2.

Pure builders (``*_request``) return ``(type, flags, payload)``; :class:`RawRtnl` sends one and
waits for its ack, raising ``OSError(errno)`` on a refusal as the kernel reported it.
``tests/unit/test_netlink_raw.py`` checks the bytes against pyroute2's encoding of the same
request, ``tests/integration/test_netlink_fastpath.py`` runs them against the kernel.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
from typing import NamedTuple

NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE = 0x1, 0x4, 0x200, 0x400
NLMSG_ERROR, NLMSG_DONE = 2, 3
RTM_NEWLINK, RTM_DELLINK, RTM_SETLINK, RTM_NEWADDR = 16, 17, 19, 20
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_LINK, IFLA_LINKINFO = 1, 3, 4, 5, 18
IFLA_NET_NS_FD, IFLA_ALT_IFNAME = 28, 53
IFLA_INFO_KIND, IFLA_INFO_DATA, IFLA_MACVLAN_MODE = 1, 2, 1
IFA_ADDRESS, IFA_LOCAL = 1, 2
IFF_UP = 0x1
_HEADER = struct.Struct("=IHHII")  # nlmsghdr: len, type, flags, seq, pid
_IFINFO = struct.Struct("=BxHiII")  # ifinfomsg: family, type, index, flags, change
_IFADDR = struct.Struct("=BBBBI")  # ifaddrmsg: family, prefixlen, flags, scope, index
_ACK = NLM_F_REQUEST | NLM_F_ACK
_CREATE = _ACK | NLM_F_CREATE | NLM_F_EXCL


class Request(NamedTuple):
    type: int
    flags: int
    payload: bytes


def attr(kind: int, payload: bytes) -> bytes:
    """One rtattr, padded to 4 bytes."""
    size = 4 + len(payload)
    return struct.pack("=HH", size, kind) + payload + b"\0" * (-size % 4)


def _u32(kind: int, value: int) -> bytes:
    return attr(kind, struct.pack("=I", value))


def _str(kind: int, value: str) -> bytes:
    return attr(kind, value.encode() + b"\0")


def _mac(value: str) -> bytes:
    return bytes(int(part, 16) for part in value.split(":"))


def _name_attr(name: str) -> bytes:
    # the kernel's IFLA_IFNAME holds IFNAMSIZ bytes; a longer altname goes as IFLA_ALT_IFNAME
    return _str(IFLA_IFNAME if len(name.encode()) < 16 else IFLA_ALT_IFNAME, name)


def setlink_request(index: int, *, mac: str | None = None, mtu: int | None = None,
                    name: str | None = None, up: bool | None = None) -> Request:
    """RTM_SETLINK of link ``index``: MAC, MTU, name and IFF_UP in one request (kernel order)."""
    attrs = b"".join((
        attr(IFLA_ADDRESS, _mac(mac)) if mac is not None else b"",
        _u32(IFLA_MTU, mtu) if mtu is not None else b"",
        _str(IFLA_IFNAME, name) if name is not None else b"",
    ))
    flags, change = ((IFF_UP if up else 0), IFF_UP) if up is not None else (0, 0)
    return Request(RTM_SETLINK, _ACK, _IFINFO.pack(0, 0, index, flags, change) + attrs)


def dellink_request(*, index: int = 0, name: str | None = None) -> Request:
    """RTM_DELLINK by ifindex, or by name (``IFLA_IFNAME``, altnames resolve too)."""
    attrs = _name_attr(name) if name is not None else b""
    return Request(RTM_DELLINK, _ACK, _IFINFO.pack(0, 0, index, 0, 0) + attrs)


def macvlan_request(name: str, master_index: int, mode: int, *, netns_fd: int | None = None,
                    mtu: int | None = None, mac: str | None = None) -> Request:
    """RTM_NEWLINK (create, exclusive) of macvlan ``name`` on ``master_index``, created directly
    in the netns of ``netns_fd`` when given."""
    info = attr(IFLA_LINKINFO, _str(IFLA_INFO_KIND, "macvlan")
                + attr(IFLA_INFO_DATA, _u32(IFLA_MACVLAN_MODE, mode)))
    attrs = b"".join((
        _str(IFLA_IFNAME, name),
        _u32(IFLA_LINK, master_index),
        _u32(IFLA_NET_NS_FD, netns_fd) if netns_fd is not None else b"",
        _u32(IFLA_MTU, mtu) if mtu is not None else b"",
        attr(IFLA_ADDRESS, _mac(mac)) if mac is not None else b"",
        info,
    ))
    return Request(RTM_NEWLINK, _CREATE, _IFINFO.pack(0, 0, 0, 0, 0) + attrs)


def newaddr_request(index: int, cidr: str) -> Request:
    """RTM_NEWADDR (create, exclusive) of ``cidr`` on link ``index``: IFA_LOCAL and IFA_ADDRESS
    for IPv4, IFA_ADDRESS for IPv6, scope universe, no broadcast (as ``ip addr add`` without
    ``brd`` and pyroute2's ``addr("add")``)."""
    iface = ipaddress.ip_interface(cidr)
    raw = iface.ip.packed
    family = socket.AF_INET if iface.version == 4 else socket.AF_INET6
    attrs = attr(IFA_LOCAL, raw) + attr(IFA_ADDRESS, raw) if family == socket.AF_INET \
        else attr(IFA_ADDRESS, raw)
    return Request(RTM_NEWADDR, _CREATE,
                   _IFADDR.pack(family, iface.network.prefixlen, 0, 0, index) + attrs)


def first_error(data: bytes, seq: int) -> int | None:
    """The ack of request ``seq`` in ``data``: 0 (done), a positive errno, or None (not there)."""
    offset = 0
    while offset + _HEADER.size <= len(data):
        length, kind, _flags, got, _pid = _HEADER.unpack_from(data, offset)
        if length < _HEADER.size:
            return None
        if got == seq and kind == NLMSG_ERROR:
            return -struct.unpack_from("=i", data, offset + _HEADER.size)[0]
        if got == seq and kind == NLMSG_DONE:
            return 0
        offset += (length + 3) & ~3
    return None


class RawRtnl:
    """One ``NETLINK_ROUTE`` socket (bound to the netns it was created in): send a request,
    wait for its ack. Not thread-safe (as :class:`sriov.netlink.Netlink`)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._seq = 0x40000000  # apart from pyroute2's numbering on a dup of this socket

    def fileno(self) -> int:
        return self.sock.fileno()

    def request(self, req: Request) -> None:
        """Send ``req`` and wait for its ack; ``OSError(errno)`` when the kernel refuses it."""
        self._seq = self._seq + 1 if self._seq < 0x7FFFFFFF else 0x40000000
        seq = self._seq
        self.sock.send(_HEADER.pack(_HEADER.size + len(req.payload), req.type, req.flags, seq, 0)
                       + req.payload)
        while True:
            error = first_error(self.sock.recv(65536), seq)
            if error is None:
                continue  # a reply to something else (never expected: groups 0)
            if error:
                raise OSError(error, os.strerror(error))
            return

    def close(self) -> None:
        self.sock.close()
