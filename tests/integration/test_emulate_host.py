"""The emulated SR-IOV host on real veths, bridges and network namespaces (root)."""

from __future__ import annotations

import errno
import select
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sriov.emulate import changes, host
from sriov.emulate.spec import EmulationSpec, EmulationState, Profile, VfLocation
from sriov.errors import EmulationError, VfSettingError
from sriov.host import open_host
from sriov.netlink import Netlink
from sriov.sysfs import SysfsReader
from sriov.types import LinkState, VfSettings
from tests.conftest import require_root, unique

pytestmark = pytest.mark.root


class Emu:
    def __init__(self, root: Path, state: EmulationState, nl: Netlink, tag: str) -> None:
        self.root, self.state, self.nl, self.tag = root, state, nl, tag

    def vf(self, pf: int, index: int):  # type: ignore[no-untyped-def]
        return next(v for v in self.state.vfs if (v.pf, v.index) == (pf, index))

    def pf(self, pf: int):  # type: ignore[no-untyped-def]
        return self.state.pfs[pf]


def _leftovers(tag: str) -> list[str]:
    out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if tag in line]


@pytest.fixture
def emu(tmp_path: Path) -> Iterator[Emu]:
    require_root()
    tag = unique()  # st-xxxxxx: every link of this host carries it
    spec = EmulationSpec(pfs=2, vfs=4, profile=Profile.IGB, pf_prefix=f"{tag}p",
                         wire_prefix=f"{tag}w", bridge=f"{tag}b")
    with Netlink() as nl:
        state = host.up(tmp_path / "emu", spec, nl)
        try:
            yield Emu(tmp_path / "emu", state, nl, tag)
        finally:
            if (tmp_path / "emu" / "sriov-emu.json").exists():
                host.down(tmp_path / "emu", nl)
    assert _leftovers(tag) == []


@pytest.fixture
def netns2() -> Iterator[tuple[str, str, str]]:
    require_root()
    names = tuple(unique("st-ns-") for _ in range(3))
    for name in names:
        subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield names  # type: ignore[misc]
    finally:
        for name in names:
            subprocess.run(["ip", "netns", "del", name], check=False)


def test_inventory_matches_spec_and_real_links(emu: Emu) -> None:
    inv = SysfsReader(emu.root).inventory()
    assert len(inv.pfs) == 2 and len(inv.vfs) == 8 and inv.skipped == ()
    assert [p.numa_node for p in inv.pfs] == [0, 1]
    assert len({v.iommu_group for v in inv.vfs}) == 8
    for pf in inv.pfs:
        vfs = inv.vfs_of(pf.address)
        assert [v.index for v in vfs] == [0, 1, 2, 3]
        assert {v.driver for v in vfs} == {"igbvf"}
    for vf in inv.vfs:
        real = emu.nl.link(vf.netdev)  # type: ignore[arg-type]
        entry = emu.root / "sys/class/net" / str(vf.netdev)
        assert real is not None and real.kind == "veth"
        assert (entry / "address").read_text().strip() == real.mac
        assert (entry / "ifindex").read_text().strip() == str(real.index)
        assert (entry / "mtu").read_text().strip() == str(real.mtu)


def test_up_twice_is_refused_until_down(emu: Emu) -> None:
    with pytest.raises(EmulationError, match="down"):
        host.up(emu.root, emu.state.spec, emu.nl)


def test_refresh_follows_a_vf_into_a_netns_and_back(emu: Emu, netns: str) -> None:
    vf = emu.vf(0, 1)
    ns = f"/var/run/netns/{netns}"
    emu.nl.move_to_netns(vf.netdev, None, ns, new_name="net1")
    host.refresh(emu.root, emu.nl)
    seen = SysfsReader(emu.root).vf(vf.address)
    assert seen.netdev is None
    state = host.refresh(emu.root, emu.nl)
    assert state.vf_by_address(vf.address).netdev == "net1"  # type: ignore[union-attr]
    back = f"{emu.tag}x1"
    emu.nl.move_to_netns("net1", ns, None, new_name=back)
    host.refresh(emu.root, emu.nl)
    assert SysfsReader(emu.root).vf(vf.address).netdev == back


def _attach(nl: Netlink, name: str, netns: str, cidr: str) -> None:
    ns = f"/var/run/netns/{netns}"
    nl.move_to_netns(name, None, ns, new_name="eth1")
    nl.set_up("eth1", ns)
    nl.set_up("lo", ns)
    nl.add_address("eth1", cidr, ns)


def _ping_argv() -> list[str]:
    if shutil.which("ping"):
        return ["ping"]
    if shutil.which("busybox"):
        return ["busybox", "ping"]
    pytest.skip("neither ping nor busybox is installed")


def _pings(netns: str, address: str) -> bool:
    argv = ["ip", "netns", "exec", netns, *_ping_argv(), "-c", "1", "-W", "2", address]
    return subprocess.run(argv, capture_output=True, check=False).returncode == 0


def test_vfs_on_the_same_vlan_talk_across_pfs_and_other_vlans_do_not(
        emu: Emu, netns2: tuple[str, str, str]) -> None:
    admin = open_host(emu.root, emu.nl).vf_admin
    a, b, c = emu.vf(0, 0), emu.vf(1, 0), emu.vf(0, 2)
    admin.apply(emu.pf(0).netdev, 0, VfSettings(vlan=100))
    admin.apply(emu.pf(1).netdev, 0, VfSettings(vlan=100))
    admin.apply(emu.pf(0).netdev, 2, VfSettings(vlan=200))
    _attach(emu.nl, a.netdev, netns2[0], "10.77.0.1/24")
    _attach(emu.nl, b.netdev, netns2[1], "10.77.0.2/24")
    _attach(emu.nl, c.netdev, netns2[2], "10.77.0.3/24")
    assert _pings(netns2[0], "10.77.0.2")
    assert not _pings(netns2[2], "10.77.0.1")
    assert admin.read(emu.pf(1).netdev, 0).vlan == 100


def test_igb_refuses_link_state_with_what_was_applied(emu: Emu) -> None:
    admin = open_host(emu.root, emu.nl).vf_admin
    with pytest.raises(VfSettingError) as err:
        admin.apply(emu.pf(0).netdev, 1, VfSettings(vlan=5, link_state=LinkState.ENABLE))
    assert (err.value.errno, err.value.applied) == (errno.EOPNOTSUPP, ("vlan",))


def test_rebind_to_vfio_and_back(emu: Emu) -> None:
    vf = emu.vf(1, 3)
    changes.rebind(emu.root, vf.address, "vfio-pci", emu.nl)
    seen = SysfsReader(emu.root).vf(vf.address)
    assert (seen.driver, seen.netdev) == ("vfio-pci", None)
    assert emu.nl.link(vf.netdev) is None and emu.nl.link(vf.wire) is None
    assert (emu.root / "dev/vfio" / str(seen.iommu_group)).exists()
    with pytest.raises(EmulationError, match="igbvf"):
        changes.rebind(emu.root, vf.address, "iavf", emu.nl)
    changes.rebind(emu.root, vf.address, "igbvf", emu.nl)
    seen = SysfsReader(emu.root).vf(vf.address)
    assert (seen.driver, seen.netdev) == ("igbvf", vf.netdev)
    assert emu.nl.link(vf.netdev) is not None


def test_set_num_vfs_like_the_kernel(emu: Emu) -> None:
    pf = emu.pf(0)
    with pytest.raises(EmulationError, match="0 first"):
        changes.set_num_vfs(emu.root, pf.netdev, 2, emu.nl)
    changes.set_num_vfs(emu.root, pf.address, 0, emu.nl)
    assert SysfsReader(emu.root).inventory().vfs_of(pf.address) == ()
    assert emu.nl.link(emu.vf(0, 0).netdev) is None
    changes.set_num_vfs(emu.root, pf.netdev, 2, emu.nl)
    vfs = SysfsReader(emu.root).inventory().vfs_of(pf.address)
    assert [v.netdev for v in vfs] == [emu.vf(0, 0).netdev, emu.vf(0, 1).netdev]
    assert all(emu.nl.link(v.netdev) is not None for v in vfs)  # type: ignore[arg-type]


def test_pf_carrier_down_reaches_tree_and_real_link(emu: Emu) -> None:
    pf = emu.pf(1)
    changes.set_pf_carrier(emu.root, pf.netdev, False, emu.nl)
    assert (emu.root / "sys/class/net" / pf.netdev / "carrier").read_text().strip() == "0"
    assert emu.nl.link(pf.netdev).carrier is False  # type: ignore[union-attr]
    vf = emu.vf(1, 0)
    assert emu.nl.link(vf.netdev).carrier is False  # type: ignore[union-attr]
    changes.set_pf_carrier(emu.root, pf.netdev, True, emu.nl)
    assert (emu.root / "sys/class/net" / pf.netdev / "carrier").read_text().strip() == "1"
    assert emu.nl.link(pf.netdev).carrier is True  # type: ignore[union-attr]


def test_vf_returns_to_host_when_its_netns_is_deleted(emu: Emu) -> None:
    vf = emu.vf(0, 0)
    ns = unique("st-ns-")
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        path = f"/var/run/netns/{ns}"
        emu.nl.move_to_netns(vf.netdev, None, path, new_name="net1")
        emu.nl.set_mac("net1", "02:aa:bb:cc:dd:01", path)
        emu.nl.set_mtu("net1", 1400, path)
        host.refresh(emu.root, emu.nl)  # records the pod-side name/MAC/MTU
    finally:
        emu.nl.forget_netns(f"/var/run/netns/{ns}")
        subprocess.run(["ip", "netns", "del", ns], check=True)
    # The kernel tears a netns down asynchronously (so does the real VF's return).
    deadline = time.monotonic() + 10
    while True:
        rec = host.refresh(emu.root, emu.nl).vf_by_address(vf.address)
        if (rec is not None and rec.location is VfLocation.HOST) or time.monotonic() > deadline:
            break
        select.select([], [], [], 0.02)
    assert rec is not None and rec.location is VfLocation.HOST
    real = emu.nl.link("net1")
    assert real is not None and (real.mac, real.mtu) == ("02:aa:bb:cc:dd:01", 1400)
    assert SysfsReader(emu.root).vf(vf.address).netdev == "net1"
    host.down(emu.root, emu.nl)
    assert emu.nl.link("net1") is None
