"""VF mode with RDMA devices: the exclusive-netns move (docs/cni.md "RDMA").

This machine's kernel has no RDMA core, so the kernel side of the move is a model
(:class:`KernelRdma`) of what the RDMA core does in exclusive mode: a device belongs to one
netns, is listed only there, is moved by ``RDMA_NLDEV_CMD_SET`` from the netns it is visible in,
goes back to the initial netns when its netns is destroyed, and may be refused by its driver
(EOPNOTSUPP, as rxe and siw do). Everything else is real: an emulated ConnectX-5 host (veth
VFs with RDMA devices in sysfs), real netns, the plugin in-process. The real kernel's answers
are checked in the VM tier (tests/vm/test_rdma_real.py).
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cni.main import Runtime
from sriov.emulate.spec import Profile
from sriov.errors import NetlinkOpError
from sriov.netlink_rdma import NetnsMode
from tests.conftest import require_root
from tests.integration.cni_vf_harness import (
    Emu,
    Injected,
    del_netns,
    emulated_host,
    link_show,
    netns_path,
    new_netns,
)

pytestmark = pytest.mark.root
HOST_NS = "/proc/self/ns/net"


class KernelRdma:
    """The RDMA core's netns behaviour for :class:`sriov.host.Host` ``.rdma`` (see module doc)."""

    def __init__(self, names: tuple[str, ...], mode: NetnsMode = NetnsMode.EXCLUSIVE,
                 refuse: tuple[str, ...] = ()) -> None:
        self.mode, self.refuse = mode, set(refuse)
        self.where: dict[str, str | None] = dict.fromkeys(names)
        self.moves: list[tuple[str, str | None, str | None]] = []

    @staticmethod
    def _inode(netns: str | None) -> int:
        return os.stat(netns or HOST_NS).st_ino

    def _reap(self) -> None:  # rdma_dev_exit_net: a destroyed netns gives its devices back
        for name, netns in self.where.items():
            if netns is not None and not os.path.exists(netns):
                self.where[name] = None

    def netns_mode(self) -> NetnsMode:
        return self.mode

    def links(self, netns: str | None = None) -> tuple[str, ...]:
        self._reap()
        if self.mode is NetnsMode.SHARED:
            return tuple(self.where)
        here = self._inode(netns)
        return tuple(n for n, ns in self.where.items() if self._inode(ns) == here)

    def move(self, name: str, src: str | None, dst: str | None) -> None:
        if name not in self.links(src):
            raise NetlinkOpError("move RDMA device", name, errno.ENODEV)
        if name in self.refuse:
            raise NetlinkOpError("move RDMA device", name, errno.EOPNOTSUPP)
        self.where[name] = None if self._inode(dst) == self._inode(None) else dst
        self.moves.append((name, src, dst))


@pytest.fixture
def emu(tmp_path: Path) -> Iterator[Emu]:
    require_root()
    yield from emulated_host(tmp_path, profile=Profile.CX5, vfio=0)


@pytest.fixture
def ns() -> Iterator[str]:
    require_root()
    name = new_netns()
    try:
        yield netns_path(name)
    finally:
        del_netns(name)


def install(monkeypatch: pytest.MonkeyPatch, kernel: KernelRdma) -> KernelRdma:
    original = Runtime._open_host

    def open_host(self: Runtime) -> Any:
        return dataclasses.replace(original(self), rdma=kernel)

    monkeypatch.setattr(Runtime, "_open_host", open_host)
    return kernel


def rdma_names(emu: Emu, index: int = 0) -> tuple[str, ...]:
    names = tuple(r.name for r in emu.vf(index).rdma_devices)
    assert names, "the ConnectX-5 emulation gives every VF an RDMA device"
    return names


def record_of(emu: Emu) -> dict[str, Any]:
    (path,) = [p for p in emu.state_dir.glob("*-net1") if p.is_file()]
    return json.loads(path.read_text())


def test_exclusive_mode_moves_the_rdma_device_with_the_vf_and_back(
        emu: Emu, ns: str, monkeypatch: pytest.MonkeyPatch) -> None:
    names = rdma_names(emu)
    kernel = install(monkeypatch, KernelRdma(names))
    vf = emu.vf(0)
    conf = emu.conf(vf.address)
    add = emu.call("ADD", conf, "c1", ns)
    assert add.rc == 0, add.stdout
    assert kernel.links(ns) == names and kernel.links(None) == ()
    assert record_of(emu)["vf"]["rdmaDevices"] == list(names)
    assert emu.call("CHECK", {**conf, "prevResult": add.out}, "c1", ns).rc == 0
    dele = emu.call("DEL", conf, "c1", ns)
    assert dele.rc == 0, dele.stdout
    assert kernel.links(None) == names and kernel.links(ns) == ()
    assert kernel.moves == [(names[0], None, ns), (names[0], ns, None)]


def test_shared_mode_moves_nothing(emu: Emu, ns: str, monkeypatch: pytest.MonkeyPatch) -> None:
    kernel = install(monkeypatch, KernelRdma(rdma_names(emu), mode=NetnsMode.SHARED))
    conf = emu.conf(emu.vf(0).address)
    assert emu.call("ADD", conf, "c1", ns).rc == 0
    assert record_of(emu)["vf"]["rdmaDevices"] == []
    assert emu.call("DEL", conf, "c1", ns).rc == 0
    assert kernel.moves == []


def test_a_refused_move_fails_add_and_rolls_back_the_vf(
        emu: Emu, ns: str, monkeypatch: pytest.MonkeyPatch) -> None:
    names = rdma_names(emu)
    kernel = install(monkeypatch, KernelRdma(names, refuse=names))
    vf = emu.vf(0)
    snap = link_show(vf.netdev)
    add = emu.call("ADD", emu.conf(vf.address), "c1", ns)
    assert add.rc == 1 and add.out is not None
    assert add.out["code"] == 102 and "EOPNOTSUPP" in add.out["msg"] + add.out.get("details", "")
    assert len(add.stdout.strip().splitlines()) == 1 and "Traceback" not in add.stderr
    assert link_show(vf.netdev) == snap and kernel.links(None) == names
    assert not [p for p in emu.state_dir.glob("*-net1") if p.is_file()]


def test_failure_after_the_move_moves_the_rdma_device_back(
        emu: Emu, ns: str, monkeypatch: pytest.MonkeyPatch) -> None:
    names = rdma_names(emu)
    kernel = install(monkeypatch, KernelRdma(names))
    vf = emu.vf(0)
    snap = link_show(vf.netdev)

    def fail(at: str) -> None:
        if at == "ipam":
            raise Injected("injected failure at ipam")

    add = emu.call("ADD", emu.conf(vf.address), "c1", ns, faults=fail)
    assert add.rc == 1, add.stdout
    assert kernel.links(None) == names and kernel.links(ns) == ()
    assert kernel.moves == [(names[0], None, ns), (names[0], ns, None)]
    assert link_show(vf.netdev) == snap


def test_del_after_the_netns_is_gone_finds_the_device_home(
        emu: Emu, monkeypatch: pytest.MonkeyPatch) -> None:
    names = rdma_names(emu)
    kernel = install(monkeypatch, KernelRdma(names))
    name = new_netns()
    conf = emu.conf(emu.vf(0).address)
    try:
        assert emu.call("ADD", conf, "c1", netns_path(name)).rc == 0
        assert kernel.links(netns_path(name)) == names
    finally:
        del_netns(name)
    emu.host.refresh()
    dele = emu.call("DEL", conf, "c1", netns_path(name))
    assert dele.rc == 0, dele.stdout
    assert kernel.links(None) == names
    assert kernel.moves == [(names[0], None, netns_path(name))]  # the kernel did the rest


def test_kernel_without_rdma_core_attaches_an_rdma_vf_normally(emu: Emu, ns: str) -> None:
    """The real RdmaOps on this machine: no NETLINK_RDMA, so nothing to move, ADD/DEL work."""
    if Path("/sys/class/infiniband").is_dir():
        pytest.skip("this kernel has an RDMA core; the no-RDMA path is not reachable here")
    conf = emu.conf(emu.vf(0).address)
    add = emu.call("ADD", conf, "c1", ns)
    assert add.rc == 0, add.stdout
    assert record_of(emu)["vf"]["rdmaDevices"] == []
    assert emu.call("DEL", conf, "c1", ns).rc == 0


def test_a_refused_move_back_fails_del_and_keeps_the_record_for_the_retry(
        emu: Emu, ns: str, monkeypatch: pytest.MonkeyPatch) -> None:
    names = rdma_names(emu)
    kernel = install(monkeypatch, KernelRdma(names))
    conf = emu.conf(emu.vf(0).address)
    assert emu.call("ADD", conf, "c1", ns).rc == 0
    kernel.refuse = set(names)
    dele = emu.call("DEL", conf, "c1", ns)
    assert dele.rc == 1 and dele.out is not None and dele.out["code"] == 102, dele.stdout
    assert record_of(emu)["vf"]["rdmaDevices"] == list(names)
    busy = emu.call("ADD", emu.conf(emu.vf(0).address), "c2", ns, ifname="net2")
    assert busy.out is not None and busy.out["code"] == 11, busy.stdout
    kernel.refuse = set()
    assert emu.call("DEL", conf, "c1", ns).rc == 0
    assert kernel.links(None) == names
