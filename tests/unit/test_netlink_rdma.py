"""nldev message encoding/decoding (sriov.netlink_rdma), byte for byte, no root needed.

Expected bytes follow include/uapi/rdma/rdma_netlink.h and linux/netlink.h (little-endian
host): nlmsghdr {len u32, type u16, flags u16, seq u32, pid u32}, nlattr {len u16, type u16}.
"""

from __future__ import annotations

import struct

import pytest

from sriov import netlink_rdma as r


def test_message_type_is_nldev_client_shifted_by_10() -> None:
    assert r.nldev_type(r.CMD_GET) == 0x1401  # RDMA_NL_GET_TYPE(RDMA_NL_NLDEV=5, 1)
    assert r.nldev_type(r.CMD_SET) == 0x1402
    assert r.nldev_type(r.CMD_SYS_GET) == 0x1406


def test_set_netns_request_bytes() -> None:
    attrs = r.attr_u32(r.ATTR_DEV_INDEX, 3) + r.attr_u32(r.ATTR_NET_NS_FD, 9)
    raw = r.encode(r.CMD_SET, r.NLM_F_ACK, 77, attrs)
    assert raw == (struct.pack("<IHHII", 32, 0x1402, 0x5, 77, 0)
                   + struct.pack("<HHI", 8, 1, 3) + struct.pack("<HHI", 8, 68, 9))


def test_u8_attribute_is_padded_to_4() -> None:
    assert r.attr_u8(r.ATTR_SYS_NETNS_MODE, 1) == struct.pack("<HHB3x", 5, 66, 1)


def test_dump_request_has_dump_flags_and_no_attributes() -> None:
    raw = r.encode(r.CMD_GET, r.NLM_F_DUMP, 5)
    assert raw == struct.pack("<IHHII", 16, 0x1401, 0x301, 5, 0)


def _msg(kind: int, seq: int, body: bytes) -> bytes:
    raw = struct.pack("<IHHII", 16 + len(body), kind, 0, seq, 0) + body
    return raw + b"\0" * (-len(raw) % 4)


def _str_attr(kind: int, text: str) -> bytes:
    payload = text.encode() + b"\0"
    raw = struct.pack("<HH", 4 + len(payload), kind) + payload
    return raw + b"\0" * (-len(raw) % 4)


def test_decode_a_device_dump_then_done() -> None:
    body = (struct.pack("<HHI", 8, 1, 2) + _str_attr(2, "mlx5_3")
            + struct.pack("<HHQ", 12, 4, 0xFFFF))  # CAP_FLAGS u64, ignored
    data = _msg(0x1401, 9, body) + _msg(r.NLMSG_DONE, 9, struct.pack("<i", 0))
    msgs = list(r.decode(data))
    assert [m.type for m in msgs] == [0x1401, r.NLMSG_DONE]
    assert r.link_of(msgs[0]) == r.RdmaLink(2, "mlx5_3")


def test_decode_error_reply_is_a_positive_errno() -> None:
    original = struct.pack("<IHHII", 32, 0x1402, 5, 4, 0)
    (msg,) = r.decode(_msg(r.NLMSG_ERROR, 4, struct.pack("<i", -95) + original))
    assert msg.error == 95  # EOPNOTSUPP: the driver cannot change netns (rxe, siw)


def test_decode_ack_is_error_zero() -> None:
    (msg,) = r.decode(_msg(r.NLMSG_ERROR, 4, struct.pack("<i", 0) + b"\0" * 16))
    assert msg.error == 0


@pytest.mark.parametrize(("raw", "mode"), [(1, r.NetnsMode.SHARED), (0, r.NetnsMode.EXCLUSIVE)])
def test_netns_mode_values(raw: int, mode: r.NetnsMode) -> None:
    (msg,) = r.decode(_msg(0x1406, 1, r.attr_u8(r.ATTR_SYS_NETNS_MODE, raw)))
    assert r.netns_mode_of(msg) is mode


def test_nested_flag_is_masked_off_attribute_types() -> None:
    attrs = r.parse_attrs(struct.pack("<HHI", 8, 0x8000 | 1, 7))
    assert attrs == {1: struct.pack("<I", 7)}


@pytest.mark.parametrize("data", [struct.pack("<HH", 2, 1), struct.pack("<HHI", 40, 1, 0)])
def test_truncated_attributes_are_refused(data: bytes) -> None:
    with pytest.raises(ValueError, match="length"):
        r.parse_attrs(data)


def test_device_message_without_name_is_refused() -> None:
    (msg,) = r.decode(_msg(0x1401, 1, struct.pack("<HHI", 8, 1, 2)))
    with pytest.raises(ValueError, match="index or name"):
        r.link_of(msg)


def test_socket_on_a_kernel_without_rdma_is_a_typed_error() -> None:
    """This machine's kernel has no ib_core: the error is NetlinkOpError, not OSError."""
    from sriov.errors import NetlinkOpError
    try:
        with r.RdmaNetlink() as rdma:
            rdma.netns_mode()
    except NetlinkOpError as e:
        assert "RDMA" in str(e)
    else:
        pytest.skip("this kernel has RDMA netlink; the no-RDMA path is not reachable here")


# ------------------------------------------------------------------ the record's RDMA field

def test_vf_record_keeps_the_moved_rdma_devices() -> None:
    from cni.record import VfPart
    part = VfPart(pf="p0", vf_index=1, rdma=("mlx5_2",))
    assert part.to_json()["rdmaDevices"] == ["mlx5_2"]
    assert VfPart.from_json(part.to_json()) == part


def test_vf_record_without_rdma_devices_reads_as_none_moved() -> None:
    from cni.record import VfPart
    assert VfPart.from_json({"pf": "p0", "vfIndex": 0}).rdma == ()


@pytest.mark.parametrize("bad", ["mlx5_2", [""], [3], {"a": 1}])
def test_vf_record_with_bad_rdma_devices_is_damaged(bad: object) -> None:
    from cni.record import DamagedRecord, VfPart
    with pytest.raises(DamagedRecord, match="rdmaDevices"):
        VfPart.from_json({"pf": "p0", "vfIndex": 0, "rdmaDevices": bad})
