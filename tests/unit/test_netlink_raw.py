"""The hand-built hot-path requests (sriov/netlink_raw.py) encode exactly what pyroute2 encodes
for the same request, and acks are read as the kernel writes them."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg

from sriov import netlink_msg as msgs
from sriov import netlink_raw as raw


def _payload(msg: Any) -> bytes:
    msg.encode()
    return bytes(msg.data[16:msg["header"]["length"]])  # without the nlmsghdr


@pytest.mark.parametrize("fields", [
    {"up": True},
    {"up": False},
    {"mac": "02:00:00:aa:bb:cc", "mtu": 1400, "name": "net1", "up": True},
    {"name": "eth0"},
    {"mtu": 9000},
])
def test_setlink_matches_pyroute2(fields: dict[str, Any]) -> None:
    ours = raw.setlink_request(7, **fields)
    assert ours.type == raw.RTM_SETLINK and ours.flags == raw.NLM_F_REQUEST | raw.NLM_F_ACK
    assert ours.payload == _payload(msgs.setlink_request(index=7, **fields))


@pytest.mark.parametrize("by", [{"index": 12}, {"name": "net1"},
                                {"name": "a-very-long-altname-0123"}])
def test_dellink_matches_pyroute2(by: dict[str, Any]) -> None:
    assert raw.dellink_request(**by).payload == _payload(msgs.getlink_request(**by))


@pytest.mark.parametrize("cidr", ["10.200.0.5/16", "192.0.2.1/32", "2001:db8::5/64"])
def test_newaddr_matches_pyroute2(cidr: str) -> None:
    address, _, prefix = cidr.partition("/")
    msg = ifaddrmsg()
    v4 = ":" not in address
    msg["family"], msg["prefixlen"], msg["index"] = (2 if v4 else 10), int(prefix), 3
    msg["attrs"] = ([("IFA_LOCAL", address)] if v4 else []) + [("IFA_ADDRESS", address)]
    ours = raw.newaddr_request(3, cidr)
    assert ours.type == raw.RTM_NEWADDR
    assert ours.flags == raw.NLM_F_REQUEST | raw.NLM_F_ACK | raw.NLM_F_CREATE | raw.NLM_F_EXCL
    assert ours.payload == _payload(msg)


def test_macvlan_request_layout() -> None:
    req = raw.macvlan_request("st-tmp", 4, 4, netns_fd=9, mtu=1400, mac="02:00:00:00:00:01")
    assert req.type == raw.RTM_NEWLINK
    attrs, offset, body = {}, 16, req.payload
    while offset < len(body):
        size, kind = struct.unpack_from("=HH", body, offset)
        attrs[kind] = body[offset + 4:offset + size]
        offset += (size + 3) & ~3
    assert attrs[raw.IFLA_IFNAME] == b"st-tmp\0"
    assert struct.unpack("=I", attrs[raw.IFLA_LINK]) == (4,)
    assert struct.unpack("=I", attrs[raw.IFLA_NET_NS_FD]) == (9,)
    assert struct.unpack("=I", attrs[raw.IFLA_MTU]) == (1400,)
    assert attrs[raw.IFLA_ADDRESS] == bytes([2, 0, 0, 0, 0, 1])
    info = attrs[raw.IFLA_LINKINFO]
    assert info.startswith(struct.pack("=HH", 12, raw.IFLA_INFO_KIND) + b"macvlan\0")
    assert info[12:] == struct.pack("=HHHHI", 12, raw.IFLA_INFO_DATA, 8, raw.IFLA_MACVLAN_MODE, 4)


def _ack(seq: int, error: int, kind: int = raw.NLMSG_ERROR) -> bytes:
    body = struct.pack("=i", -error) + b"\0" * 16
    return struct.pack("=IHHII", 16 + len(body), kind, 0, seq, 0) + body


def test_acks_are_matched_by_sequence_number() -> None:
    assert raw.first_error(_ack(5, 0), 5) == 0
    assert raw.first_error(_ack(5, 17), 5) == 17  # EEXIST
    assert raw.first_error(_ack(4, 0) + _ack(5, 19), 5) == 19  # another reply first
    assert raw.first_error(_ack(4, 0), 5) is None
    assert raw.first_error(b"\0" * 8, 5) is None  # truncated: not an ack
