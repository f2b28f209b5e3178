"""RDMA netlink (``NETLINK_RDMA``, the kernel's ``nldev`` client): netns mode and device moves.

pyroute2 0.9 has no RDMA family, so the few ``nldev`` messages we need are encoded here by
hand (``include/uapi/rdma/rdma_netlink.h``; the same messages as vishvananda/netlink's
``rdma_link_linux.go``, which rdma-cni uses):

- ``RDMA_NLDEV_CMD_SYS_GET``: the subsystem's netns mode (``RDMA_NLDEV_SYS_ATTR_NETNS_MODE``,
  u8: 1 shared, 0 exclusive); ``SYS_SET`` changes it (tests, ``rdma system set netns``);
- ``RDMA_NLDEV_CMD_GET`` dump: the RDMA devices *visible in the socket's netns* (index, name).
  In exclusive mode a device is visible only in the one netns it belongs to;
- ``RDMA_NLDEV_CMD_SET`` with ``DEV_INDEX`` + ``RDMA_NLDEV_NET_NS_FD``: move a device into the
  netns of that fd. The kernel takes the device from the socket's netns, so moving one back out
  of a pod means a socket opened *inside* the pod (:func:`sriov.netlink_ns.run_in_netns`).

A socket's netns is fixed when it is created; the process never changes netns. Every failure is
a :class:`~sriov.errors.NetlinkOpError` (``EPROTONOSUPPORT`` when the kernel has no RDMA core).
Pure encode/decode functions are separate from the socket class (unit tests need no root).
"""

from __future__ import annotations

import dataclasses
import enum
import errno as E
import itertools
import socket
import struct
from collections.abc import Iterator

from sriov.errors import NetlinkOpError
from sriov.netlink_ns import netns_fd, run_in_netns

NETLINK_RDMA = 20
RDMA_NL_NLDEV = 5
CMD_GET, CMD_SET, CMD_SYS_GET, CMD_SYS_SET = 1, 2, 6, 7
ATTR_DEV_INDEX, ATTR_DEV_NAME = 1, 2
ATTR_SYS_NETNS_MODE, ATTR_NET_NS_FD = 66, 68
NLM_F_REQUEST, NLM_F_ACK, NLM_F_DUMP = 0x1, 0x4, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
_HDR = struct.Struct("=IHHII")  # struct nlmsghdr
_NLA = struct.Struct("=HH")  # struct nlattr
_NLA_TYPE_MASK = 0x3FFF
REPLY_TIMEOUT = 10.0  # without NLA_F_NESTED / NLA_F_NET_BYTEORDER
_seq = itertools.count(1)


class NetnsMode(enum.StrEnum):
    """``rdma system show netns``."""

    SHARED = "shared"  # every netns sees every RDMA device (the kernel default)
    EXCLUSIVE = "exclusive"  # a device belongs to one netns and can be moved


@dataclasses.dataclass(frozen=True, slots=True)
class RdmaLink:
    index: int
    name: str


@dataclasses.dataclass(frozen=True, slots=True)
class Message:
    """One decoded netlink message: ``error`` is set (0 = ACK) for ``NLMSG_ERROR``."""

    type: int
    seq: int
    attrs: dict[int, bytes]
    error: int | None = None


def nldev_type(cmd: int) -> int:
    """``RDMA_NL_GET_TYPE(RDMA_NL_NLDEV, cmd)``."""
    return (RDMA_NL_NLDEV << 10) | cmd


def attr_u32(kind: int, value: int) -> bytes:
    return _attr(kind, struct.pack("=I", value))


def attr_u8(kind: int, value: int) -> bytes:
    return _attr(kind, struct.pack("=B", value))


def _attr(kind: int, payload: bytes) -> bytes:
    raw = _NLA.pack(_NLA.size + len(payload), kind) + payload
    return raw + b"\0" * (-len(raw) % 4)


def encode(cmd: int, flags: int, seq: int, attrs: bytes = b"") -> bytes:
    """A complete request: ``nlmsghdr`` (pid 0: the kernel) followed by ``attrs``."""
    return _HDR.pack(_HDR.size + len(attrs), nldev_type(cmd), NLM_F_REQUEST | flags, seq, 0) + attrs


def parse_attrs(data: bytes) -> dict[int, bytes]:
    """Top-level attributes by type (payloads unpadded; a later duplicate wins)."""
    attrs: dict[int, bytes] = {}
    off = 0
    while off + _NLA.size <= len(data):
        length, kind = _NLA.unpack_from(data, off)
        if length < _NLA.size or off + length > len(data):
            raise ValueError(f"bad netlink attribute length {length} at offset {off}")
        attrs[kind & _NLA_TYPE_MASK] = data[off + _NLA.size:off + length]
        off += (length + 3) & ~3
    return attrs


def decode(data: bytes) -> Iterator[Message]:
    """The messages of one ``recv`` buffer."""
    off = 0
    while off + _HDR.size <= len(data):
        length, kind, _flags, seq, _pid = _HDR.unpack_from(data, off)
        if length < _HDR.size or off + length > len(data):
            raise ValueError(f"bad netlink message length {length} at offset {off}")
        body = data[off + _HDR.size:off + length]
        if kind == NLMSG_ERROR:
            (code,) = struct.unpack_from("=i", body)
            yield Message(kind, seq, {}, error=-code)
        else:
            yield Message(kind, seq, parse_attrs(body) if kind != NLMSG_DONE else {})
        off += (length + 3) & ~3


def link_of(msg: Message) -> RdmaLink:
    index, name = msg.attrs.get(ATTR_DEV_INDEX), msg.attrs.get(ATTR_DEV_NAME)
    if index is None or name is None:
        raise ValueError("RDMA device message without index or name")
    return RdmaLink(struct.unpack("=I", index[:4])[0], name.split(b"\0", 1)[0].decode())


def netns_mode_of(msg: Message) -> NetnsMode:
    raw = msg.attrs.get(ATTR_SYS_NETNS_MODE)
    if not raw:
        raise ValueError("RDMA system message without a netns mode")
    return NetnsMode.SHARED if raw[0] else NetnsMode.EXCLUSIVE


class RdmaNetlink:
    """One ``NETLINK_RDMA`` socket in netns ``netns`` (``None``: the caller's). Not thread-safe."""

    def __init__(self, netns: str | None = None) -> None:
        self.netns = netns
        where = netns or "host netns"
        try:
            self._sock = run_in_netns(netns, lambda: socket.socket(
                socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_RDMA))
        except OSError as e:  # EPROTONOSUPPORT: no ib_core in this kernel
            raise NetlinkOpError("open RDMA netlink socket", where, e.errno or 0) from e
        self._sock.settimeout(REPLY_TIMEOUT)  # a CNI verb must not hang on a silent kernel

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> RdmaNetlink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, op: str, target: str, cmd: int, flags: int,
                 attrs: bytes = b"") -> list[Message]:
        seq = next(_seq)
        try:
            self._sock.send(encode(cmd, flags, seq, attrs))
            replies: list[Message] = []
            while True:
                for msg in decode(self._sock.recv(65536)):
                    if msg.seq != seq:
                        continue
                    if msg.error is not None:
                        if msg.error:
                            raise NetlinkOpError(op, target, msg.error)
                        return replies  # the ACK
                    if msg.type == NLMSG_DONE:
                        return replies
                    replies.append(msg)
        except TimeoutError as e:
            detail = f"no reply in {REPLY_TIMEOUT:.0f}s"
            raise NetlinkOpError(op, target, E.ETIMEDOUT, detail) from e
        except OSError as e:
            raise NetlinkOpError(op, target, e.errno or 0) from e
        except ValueError as e:
            raise NetlinkOpError(op, target, E.EPROTO, str(e)) from e

    def netns_mode(self) -> NetnsMode:
        replies = self._request("get RDMA netns mode", "system", CMD_SYS_GET, NLM_F_ACK)
        if not replies:
            raise NetlinkOpError("get RDMA netns mode", "system", E.EPROTO, "no reply")
        try:
            return netns_mode_of(replies[0])
        except ValueError as e:
            raise NetlinkOpError("get RDMA netns mode", "system", E.EPROTO, str(e)) from e

    def set_netns_mode(self, mode: NetnsMode) -> None:
        """``rdma system set netns <mode>`` (refused with EBUSY while other netns exist)."""
        self._request("set RDMA netns mode", str(mode), CMD_SYS_SET, NLM_F_ACK,
                      attr_u8(ATTR_SYS_NETNS_MODE, mode is NetnsMode.SHARED))

    def links(self) -> tuple[RdmaLink, ...]:
        """The RDMA devices visible in this socket's netns."""
        replies = self._request("list RDMA devices", self.netns or "host netns",
                                CMD_GET, NLM_F_DUMP)
        try:
            return tuple(link_of(m) for m in replies)
        except ValueError as e:
            raise NetlinkOpError("list RDMA devices", self.netns or "host netns",
                                 E.EPROTO, str(e)) from e

    def link(self, name: str) -> RdmaLink | None:
        return next((link for link in self.links() if link.name == name), None)

    def set_netns_fd(self, link: RdmaLink, fd: int) -> None:
        """Move ``link`` (visible in this socket's netns) into the netns of ``fd``."""
        self._request("move RDMA device", link.name, CMD_SET, NLM_F_ACK,
                      attr_u32(ATTR_DEV_INDEX, link.index) + attr_u32(ATTR_NET_NS_FD, fd))


class RdmaOps:
    """The operations the CNI needs, each with its own short-lived socket(s).

    Netns paths as in :mod:`sriov.netlink` (``None``: the caller's own netns). The CNI gets
    this through :class:`sriov.host.Host` so tests can substitute the kernel's behaviour on a
    machine without RDMA hardware."""

    def netns_mode(self) -> NetnsMode:
        with RdmaNetlink() as rdma:
            return rdma.netns_mode()

    def links(self, netns: str | None = None) -> tuple[str, ...]:
        with RdmaNetlink(netns) as rdma:
            return tuple(link.name for link in rdma.links())

    def move(self, name: str, src: str | None, dst: str | None) -> None:
        """Move RDMA device ``name`` from netns ``src`` into netns ``dst``."""
        with RdmaNetlink(src) as rdma:
            link = rdma.link(name)
            if link is None:
                raise NetlinkOpError("move RDMA device", name, E.ENODEV,
                                     f"not visible in {src or 'the host netns'}")
            with netns_fd(dst) as fd:
                rdma.set_netns_fd(link, fd)


__all__ = ["NETLINK_RDMA", "NetnsMode", "RdmaLink", "RdmaNetlink", "RdmaOps", "decode", "encode"]
