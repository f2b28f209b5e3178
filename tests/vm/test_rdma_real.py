"""RDMA netlink against the guest's real RDMA core (Debian 6.1: ib_core, soft-RoCE rdma_rxe).

What the testbed can show: the subsystem's netns mode (read and set), the device list per netns
(exclusive mode hides a device from every other netns), the kernel's answer to a move, and how
a soft-RoCE device relates to a VF. What it cannot: a successful move. QEMU emulates no RDMA HCA
whose driver can change netns (the kernel requires ``disassociate_ucontext``, which rxe and siw
lack: ``rdma dev set rxe0 netns X`` is EOPNOTSUPP), and an rxe device is unregistered as soon as
its netdev leaves the initial netns. The move itself is covered against a model of the kernel in
tests/integration/test_cni_vf_rdma.py; see docs/cni.md "RDMA" and docs/vm-testbed.md.
"""

from __future__ import annotations

import errno
import json
import re
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.vm import hw
from tests.vm.conftest import EnableVfs, colleague_module

MODULES = ("ib_core", "ib_uverbs", "ib_umad", "rdma_ucm", "rdma_rxe")
RXE = "rxe0"


def _rdma(*args: str) -> str:
    return subprocess.run(["rdma", *args], capture_output=True, text=True, check=True).stdout


def set_mode(exclusive: bool) -> None:
    """``rdma system set netns``; the kernel refuses (EBUSY) while any other netns exists, and
    a deleted netns lingers until the kernel's asynchronous cleanup_net ran: retry."""
    rdma = colleague_module("sriov.netlink_rdma")
    mode = rdma.NetnsMode.EXCLUSIVE if exclusive else rdma.NetnsMode.SHARED

    def attempt() -> bool | None:
        try:
            with rdma.RdmaNetlink() as nl:
                nl.set_netns_mode(mode)
        except colleague_module("sriov.errors").NetlinkOpError as e:
            if e.errno != errno.EBUSY:
                raise
            return None
        return True

    hw.wait_for(attempt, what=f"RDMA netns mode {mode}")


def _netns(name: str) -> str:
    subprocess.run(["ip", "netns", "add", name], check=True)
    return f"/var/run/netns/{name}"


@pytest.fixture
def rxe_on_vf(sriov_pf: hw.RealPf, enable_vfs: EnableVfs) -> Iterator[hw.RealVf]:
    """A soft-RoCE device ``rxe0`` on an igbvf VF netdev; shared mode and no rxe afterwards."""
    for module in MODULES:
        if subprocess.run(["modprobe", module], capture_output=True).returncode != 0:
            pytest.skip(f"cannot load {module} in this guest")
    colleague_module("sriov.netlink_rdma")  # fail clearly (not skip) if it is missing
    vf = enable_vfs(sriov_pf, 1)[0]
    assert vf.netdev is not None
    subprocess.run(["ip", "link", "set", vf.netdev, "up"], check=True)
    subprocess.run(["rdma", "link", "add", RXE, "type", "rxe", "netdev", vf.netdev], check=True)
    try:
        yield vf
    finally:
        subprocess.run(["rdma", "link", "delete", RXE], capture_output=True, check=False)
        set_mode(exclusive=False)


def test_netns_mode_is_the_kernels_and_can_be_set(rxe_on_vf: hw.RealVf) -> None:
    rdma = colleague_module("sriov.netlink_rdma")
    ops = rdma.RdmaOps()
    assert ops.netns_mode() is rdma.NetnsMode.SHARED
    assert "netns shared" in _rdma("system", "show")
    set_mode(exclusive=True)
    assert ops.netns_mode() is rdma.NetnsMode.EXCLUSIVE
    assert "netns exclusive" in _rdma("system", "show")


def test_device_list_matches_rdma_dev_show_per_netns(rxe_on_vf: hw.RealVf) -> None:
    rdma = colleague_module("sriov.netlink_rdma")
    with rdma.RdmaNetlink() as nl:
        links = nl.links()
        assert nl.link(RXE) in links and nl.link("nosuch") is None
    shown = {(int(i), n) for i, n in re.findall(r"^(\d+): (\S+):", _rdma("dev", "show"), re.M)}
    assert {(link.index, link.name) for link in links} == shown
    name = "rdma-" + secrets.token_hex(3)
    ops = rdma.RdmaOps()
    try:
        pod = _netns(name)
        assert ops.links(pod) == (RXE,)  # shared mode: every netns sees every device
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)
    set_mode(exclusive=True)
    try:
        pod = _netns(name)
        assert ops.links(pod) == ()  # exclusive: the device belongs to the initial netns only
        assert RXE in ops.links(None)
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def test_rxe_is_not_the_vfs_rdma_device(rxe_on_vf: hw.RealVf) -> None:
    """Discovery ties RDMA devices to PCI functions (``<pci>/infiniband/``, as rdmamap): rxe
    is a virtual device whose only link to the VF is its netdev, so the VF has none."""
    sysfs = colleague_module("sriov.sysfs")
    assert not (rxe_on_vf.device_dir / "infiniband").exists()
    assert Path("/sys/class/infiniband", RXE).resolve().parent == Path(
        "/sys/devices/virtual/infiniband")
    assert Path("/sys/class/infiniband", RXE, "parent").read_text().strip() == rxe_on_vf.netdev
    assert sysfs.SysfsReader(Path("/")).vf(rxe_on_vf.address).rdma_devices == ()


def test_kernel_refuses_to_move_rxe_with_a_typed_error(rxe_on_vf: hw.RealVf) -> None:
    rdma = colleague_module("sriov.netlink_rdma")
    errors = colleague_module("sriov.errors")
    set_mode(exclusive=True)
    name = "rdma-" + secrets.token_hex(3)
    try:
        pod = _netns(name)
        ops = rdma.RdmaOps()
        with pytest.raises(errors.NetlinkOpError) as caught:
            ops.move(RXE, None, pod)
        assert caught.value.errno == errno.EOPNOTSUPP and RXE in str(caught.value)
        assert ops.links(None) == (RXE,) and ops.links(pod) == ()
        with pytest.raises(errors.NetlinkOpError) as caught:
            ops.move(RXE, pod, None)  # not visible in the pod: nothing to move back
        assert caught.value.errno == errno.ENODEV
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def test_rxe_is_unregistered_when_its_netdev_leaves_the_host(rxe_on_vf: hw.RealVf) -> None:
    """Why rxe cannot follow a VF into a pod: the kernel deletes it when the netdev moves."""
    rdma = colleague_module("sriov.netlink_rdma")
    netdev = rxe_on_vf.netdev
    assert netdev is not None
    name = "rdma-" + secrets.token_hex(3)
    try:
        pod = _netns(name)
        subprocess.run(["ip", "link", "set", netdev, "netns", name], check=True)
        hw.wait_for(lambda: RXE not in rdma.RdmaOps().links(None) or None,
                    what=f"{RXE} unregistered")
        assert rdma.RdmaOps().links(pod) == ()
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)
    hw.wait_for(lambda: rxe_on_vf.netdev, what="VF netdev back in the host")


# ------------------------------------------------ the CNI against the real RDMA core

@pytest.fixture
def cx5_with_real_rdma(tmp_path: Path) -> Iterator[tuple[Any, str]]:
    """An emulated ConnectX-5 host whose VF 0's RDMA device (by discovery, ``mlx5_N``) is a real
    soft-RoCE device of that name on the VF's veth: the CNI's RDMA hook meets the real kernel."""
    for module in MODULES:
        if subprocess.run(["modprobe", module], capture_output=True).returncode != 0:
            pytest.skip(f"cannot load {module} in this guest")
    harness = colleague_module("tests.integration.cni_vf_harness")
    spec = colleague_module("sriov.emulate.spec")
    for emu in harness.emulated_host(tmp_path, profile=spec.Profile.CX5, vfs=1, vfio=0):
        vf = emu.vf(0)
        (name,) = [r.name for r in vf.rdma_devices]
        subprocess.run(["rdma", "link", "add", name, "type", "rxe", "netdev", vf.netdev],
                       check=True)
        try:
            yield emu, name
        finally:
            subprocess.run(["rdma", "link", "delete", name], capture_output=True, check=False)
            set_mode(exclusive=False)


def test_cni_add_in_shared_mode_moves_nothing(cx5_with_real_rdma: tuple[Any, str]) -> None:
    harness = colleague_module("tests.integration.cni_vf_harness")
    emu, _ = cx5_with_real_rdma
    name = harness.new_netns()
    try:
        conf = emu.conf(emu.vf(0).address)
        add = emu.call("ADD", conf, "c1", harness.netns_path(name))
        assert add.rc == 0, add.stdout
        (record,) = [p for p in emu.state_dir.glob("*-net1") if p.is_file()]
        assert json.loads(record.read_text())["vf"]["rdmaDevices"] == []
        assert emu.call("DEL", conf, "c1", harness.netns_path(name)).rc == 0
    finally:
        harness.del_netns(name)


def test_cni_add_whose_rdma_device_cannot_follow_fails_and_rolls_back(
        cx5_with_real_rdma: tuple[Any, str]) -> None:
    """Exclusive mode, real kernel: the VF's netdev moves, the kernel unregisters the rxe device
    on it (an HCA's would stay), so the RDMA move finds nothing: code 102, VF restored exactly."""
    harness = colleague_module("tests.integration.cni_vf_harness")
    emu, rdma_name = cx5_with_real_rdma
    set_mode(exclusive=True)
    vf = emu.vf(0)
    snap = harness.link_show(vf.netdev)
    name = harness.new_netns()
    try:
        add = emu.call("ADD", emu.conf(vf.address), "c1", harness.netns_path(name))
        assert add.rc == 1 and add.out is not None and add.out["code"] == 102, add.stdout
        assert rdma_name in add.out["msg"] + add.out.get("details", "")
        assert len(add.stdout.strip().splitlines()) == 1
        assert harness.link_show(vf.netdev) == snap
        assert not [p for p in emu.state_dir.glob("*-net1") if p.is_file()]
    finally:
        harness.del_netns(name)
