"""RDMA through devlink's ``enable_rdma`` parameter (upstream's second RDMA test).

This kernel has no devlink devices (often no devlink family at all), so the parse logic
is fed replies built byte by byte from the kernel's UAPI (include/uapi/linux/devlink.h
attribute numbers), decoded by pyroute2 as a real dump would be; the "absent" path runs
against the real kernel.
"""

from __future__ import annotations

import errno
import json
import struct
from pathlib import Path
from typing import Any

import pytest

from deviceplugin.scanner import ConfigFile, HostScanner
from sriov.emulate.profiles import MELLANOX_CX5
from sriov.emulate.tree import PfSpec, SysfsTreeBuilder
from sriov.netlink_devlink import DevlinkRdma, _pyroute2_dump, enabled_devices
from sriov.sysfs import SysfsReader

# include/uapi/linux/devlink.h
CMD_PARAM_GET = 38
ATTR_BUS_NAME, ATTR_DEV_NAME = 1, 2
ATTR_PARAM, ATTR_PARAM_NAME, ATTR_PARAM_GENERIC, ATTR_PARAM_TYPE = 80, 81, 82, 83
ATTR_PARAM_VALUES_LIST, ATTR_PARAM_VALUE, ATTR_PARAM_VALUE_DATA = 84, 85, 86
ATTR_PARAM_VALUE_CMODE = 87
NLA_F_NESTED = 0x8000
TYPE_U32, TYPE_BOOL = 3, 6  # DEVLINK_PARAM_TYPE_*
CMODE_DRIVERINIT = 1


def nla(kind: int, payload: bytes) -> bytes:
    body = struct.pack("HH", 4 + len(payload), kind) + payload
    return body + b"\0" * (-len(body) % 4)


def nested(kind: int, *children: bytes) -> bytes:
    return nla(kind | NLA_F_NESTED, b"".join(children))


def asciiz(text: str) -> bytes:
    return text.encode() + b"\0"


def param_reply(bus: str, dev: str, name: str, ptype: int, data: bytes | None) -> Any:
    """One PARAM_GET reply as the kernel sends it (devlink_nl_param_fill), decoded."""
    from pyroute2.netlink.devlink import devlinkcmd

    value = [nla(ATTR_PARAM_VALUE_CMODE, bytes([CMODE_DRIVERINIT]))]
    if data is not None:
        value.append(nla(ATTR_PARAM_VALUE_DATA, data))
    attrs = (nla(ATTR_BUS_NAME, asciiz(bus)) + nla(ATTR_DEV_NAME, asciiz(dev))
             + nested(ATTR_PARAM, nla(ATTR_PARAM_NAME, asciiz(name)), nla(ATTR_PARAM_GENERIC, b""),
                      nla(ATTR_PARAM_TYPE, bytes([ptype])),
                      nested(ATTR_PARAM_VALUES_LIST, nested(ATTR_PARAM_VALUE, *value))))
    genl = struct.pack("BBH", CMD_PARAM_GET, 1, 0)
    header = struct.pack("IHHII", 16 + len(genl) + len(attrs), 20, 2, 1, 0)
    msg = devlinkcmd(header + genl + attrs)
    msg.decode()
    return msg


def test_enable_rdma_true_false_and_other_params() -> None:
    replies = [
        param_reply("pci", "0000:3b:02.0", "enable_rdma", TYPE_BOOL, b""),  # flag: true
        param_reply("pci", "0000:3b:02.1", "enable_rdma", TYPE_BOOL, None),  # false
        param_reply("pci", "0000:3b:02.2", "enable_roce", TYPE_BOOL, b""),  # another param
        param_reply("pci", "0000:3b:02.3", "enable_rdma", TYPE_U32, struct.pack("I", 1)),
        param_reply("auxiliary", "mlx5_core.sf.4", "enable_rdma", TYPE_BOOL, b""),
    ]
    assert enabled_devices(replies) == {"pci/0000:3b:02.0", "auxiliary/mlx5_core.sf.4"}
    assert enabled_devices([]) == frozenset()


def test_no_devlink_family_is_remembered_and_costs_nothing_after() -> None:
    """The real kernel: without devlink the first call finds out and the rest never ask."""
    calls: list[int] = []

    def dump() -> list[Any]:
        calls.append(1)
        return _pyroute2_dump()

    probe = DevlinkRdma(dump)
    first = probe()  # never raises
    if not probe.absent:
        pytest.skip("this kernel has devlink: the absent path cannot be shown here")
    assert first == frozenset()
    assert probe() == probe() == frozenset()
    assert len(calls) == 1


def test_other_errors_give_nothing_and_are_retried() -> None:
    calls: list[int] = []

    def refused() -> list[Any]:
        calls.append(1)
        raise OSError(errno.EPERM, "Operation not permitted")

    probe = DevlinkRdma(refused)
    assert probe() == probe() == frozenset()
    assert not probe.absent and len(calls) == 2


def _scan(root: Path, tmp_path: Path, pools: list[dict[str, Any]],
          probe: DevlinkRdma) -> dict[str, list[str]]:
    (tmp_path / "c.json").write_text(json.dumps({"resourceList": pools}))
    cfg = ConfigFile(tmp_path / "c.json", "nvidia.com")
    cfg.load_initial()
    states = HostScanner(cfg, SysfsReader(root).inventory, lambda _: True,
                         devlink_rdma=probe)()
    return {name: [d.id for d in s.devices] for name, s in states.items()}


def test_isrdma_pool_keeps_a_vf_whose_rdma_device_left_the_host_view(tmp_path: Path) -> None:
    """A VF whose RDMA device moved into a pod's netns (exclusive mode) has no
    ``infiniband/`` entry in the host's sysfs; devlink still says RDMA, as upstream reads it."""
    root = tmp_path / "host"
    built = SysfsTreeBuilder(root).add_pf(PfSpec(
        address="0000:3b:00.0", ifname="ens1f0", profile=MELLANOX_CX5, num_vfs=2,
        vf_ifnames=("ens1f0v0", "ens1f0v1")))
    moved = built.vf_addresses[1]
    for entry in (root / "sys/bus/pci/devices" / moved / "infiniband").iterdir():
        entry.rename(tmp_path / entry.name)  # gone from the host's view
    calls: list[int] = []

    def dump() -> list[Any]:
        calls.append(1)
        return [param_reply("pci", a, "enable_rdma", TYPE_BOOL, b"")
                for a in built.vf_addresses]

    rdma_pool = [{"resourceName": "rdma", "selectors": [{"isRdma": True}]}]
    assert _scan(root, tmp_path, rdma_pool, DevlinkRdma(dump)) == {
        "nvidia.com/rdma": list(built.vf_addresses)}
    assert _scan(root, tmp_path, rdma_pool, DevlinkRdma(list)) == {  # devlink says nothing
        "nvidia.com/rdma": [built.vf_addresses[0]]}
    calls.clear()
    _scan(root, tmp_path, [{"resourceName": "all", "selectors": [{}]}], DevlinkRdma(dump))
    assert calls == []  # no isRdma pool: devlink is not asked
