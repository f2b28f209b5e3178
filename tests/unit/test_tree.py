"""The emulated sysfs tree mirrors the real kernel layout and can be changed in place."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sriov.emulate.profiles import INTEL_X710, PROFILES, profile_for_vf
from sriov.emulate.tree import PfSpec, SysfsTreeBuilder
from sriov.errors import EmulationError, InvalidInputError
from sriov.sysfs import SysfsReader

PF = "0000:3b:00.0"


@pytest.fixture
def tree(tmp_path: Path) -> SysfsTreeBuilder:
    b = SysfsTreeBuilder(tmp_path)
    b.add_pf(PfSpec(address=PF, ifname="ens1f0", num_vfs=2, numa_node=0,
                    vf_ifnames=("ens1f0v0", "ens1f0v1")))
    return b


def test_layout_matches_real_sysfs(tree: SysfsTreeBuilder) -> None:
    sys = tree.sys
    pf_dir = sys / "devices/pci0000:3a/0000:3a:00.0/0000:3b:00.0"
    assert os.readlink(sys / "bus/pci/devices" / PF) == \
        "../../../devices/pci0000:3a/0000:3a:00.0/0000:3b:00.0"
    assert (pf_dir / "vendor").read_text() == "0x8086\n"
    assert (pf_dir / "device").read_text() == "0x1572\n"
    assert (pf_dir / "class").read_text() == "0x020000\n"
    assert (pf_dir / "sriov_totalvfs").read_text() == "64\n"
    assert (pf_dir / "sriov_numvfs").read_text() == "2\n"
    assert (pf_dir / "sriov_offset").read_text() == "16\n"
    assert (pf_dir / "sriov_vf_device").read_text() == "154c\n"
    assert os.readlink(pf_dir / "driver") == "../../../../bus/pci/drivers/i40e"
    assert os.readlink(pf_dir / "virtfn1") == "../0000:3b:02.1"
    assert os.readlink(pf_dir / "iommu_group").startswith("../../../../kernel/iommu_groups/")
    vf_dir = pf_dir.parent / "0000:3b:02.1"
    assert os.readlink(vf_dir / "physfn") == "../0000:3b:00.0"
    assert os.readlink(vf_dir / "driver") == "../../../../bus/pci/drivers/iavf"
    assert os.readlink(sys / "class/net/ens1f0v1") == \
        "../../devices/pci0000:3a/0000:3a:00.0/0000:3b:02.1/net/ens1f0v1"
    assert os.readlink(sys / "bus/pci/drivers/iavf/0000:3b:02.1") == \
        "../../../../devices/pci0000:3a/0000:3a:00.0/0000:3b:02.1"
    group = os.path.basename(os.readlink(vf_dir / "iommu_group"))
    assert (sys / "kernel/iommu_groups" / group / "devices/0000:3b:02.1").resolve() == vf_dir
    nd = pf_dir / "net/ens1f0"
    assert {"address", "mtu", "type", "carrier", "operstate", "ifindex"} <= set(os.listdir(nd))
    assert (nd / "type").read_text() == "1\n"
    assert (nd / "device").resolve() == pf_dir


def test_set_num_vfs_grows_and_shrinks(tree: SysfsTreeBuilder) -> None:
    addrs = tree.set_num_vfs(PF, 5)
    assert addrs[-1] == "0000:3b:02.4"
    reader = SysfsReader(tree.root)
    assert reader.pf(PF).num_vfs == 5
    assert reader.vf("0000:3b:02.4").driver == "iavf"
    assert tree.set_num_vfs(PF, 1) == ("0000:3b:02.0",)
    inv = reader.inventory()
    assert [v.address for v in inv.vfs] == ["0000:3b:02.0"] and inv.skipped == ()
    assert not (tree.sys / "bus/pci/devices/0000:3b:02.1").exists()
    assert not (tree.sys / "class/net/ens1f0v1").exists()
    assert not (tree.sys / "bus/pci/drivers/iavf/0000:3b:02.1").exists()
    with pytest.raises(EmulationError, match="out of range"):
        tree.set_num_vfs(PF, 65)


def test_bind_vfio_and_back(tree: SysfsTreeBuilder) -> None:
    vf = "0000:3b:02.0"
    tree.bind_vf_driver(vf, "vfio-pci")
    reader = SysfsReader(tree.root)
    got = reader.vf(vf)
    assert got.driver == "vfio-pci" and got.netdev is None
    assert (tree.root / "dev/vfio" / str(got.iommu_group)).exists()
    assert not (tree.sys / "class/net/ens1f0v0").exists()
    tree.bind_vf_driver(vf, "iavf", ifname="ens1f0v0")
    back = reader.vf(vf)
    assert back.driver == "iavf" and back.netdev == "ens1f0v0"
    assert not (tree.root / "dev/vfio" / str(got.iommu_group)).exists()
    tree.bind_vf_driver(vf, None)
    assert reader.vf(vf).driver is None


def test_rename_and_move_away_a_vf_netdev(tree: SysfsTreeBuilder) -> None:
    vf = "0000:3b:02.1"
    tree.set_vf_netdev(vf, "renamed0", mtu=9000)
    reader = SysfsReader(tree.root)
    assert reader.vf_netdev(vf) == "renamed0"
    assert (tree.sys / "class/net/renamed0/mtu").read_text() == "9000\n"
    assert not (tree.sys / "class/net/ens1f0v1").exists()
    tree.set_vf_netdev(vf, None)  # moved into a pod's netns
    assert reader.vf_netdev(vf) is None
    tree.set_vf_netdev(vf, "back0")  # moved back, kernel name again
    assert reader.vf(vf).netdev == "back0"
    with pytest.raises(EmulationError, match="already used"):
        tree.set_vf_netdev(vf, "ens1f0v0")


def test_state_lives_on_disk(tree: SysfsTreeBuilder) -> None:
    other = SysfsTreeBuilder(tree.root)  # e.g. another sriovctl process
    other.set_num_vfs(PF, 3, vf_ifnames=["ens1f0v2"])
    assert SysfsReader(tree.root).vf("0000:3b:02.2").netdev == "ens1f0v2"


def test_set_carrier(tree: SysfsTreeBuilder) -> None:
    tree.set_carrier("ens1f0v0", False)
    assert (tree.sys / "class/net/ens1f0v0/carrier").read_text() == "0\n"
    assert (tree.sys / "class/net/ens1f0v0/operstate").read_text() == "down\n"
    with pytest.raises(EmulationError, match="no netdev"):
        tree.set_carrier("nosuch0", True)


def test_remove_tree(tree: SysfsTreeBuilder) -> None:
    tree.bind_vf_driver("0000:3b:02.0", "vfio-pci")
    tree.remove_tree()
    assert list(tree.root.iterdir()) == []


def test_refuses_the_real_root() -> None:
    with pytest.raises(EmulationError, match="real /"):
        SysfsTreeBuilder(Path("/"))


def test_duplicate_pf_is_refused(tree: SysfsTreeBuilder) -> None:
    with pytest.raises(EmulationError, match="already exists"):
        tree.add_pf(PfSpec(address=PF, ifname="x0"))


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"address": "3b:00"}, InvalidInputError, "PCI address"),
    ({"ifname": "bad/name"}, InvalidInputError, "interface name"),
    ({"num_vfs": 65}, EmulationError, "num_vfs 65 out of range"),
    ({"num_vfs": 2, "vf_ifnames": ("a",)}, EmulationError, "vf_ifnames has 1 names"),
])
def test_spec_validation(kwargs: dict[str, object], error: type[Exception], match: str) -> None:
    args: dict[str, object] = {"address": PF, "ifname": "ens1f0", "profile": INTEL_X710}
    args.update(kwargs)
    with pytest.raises(error, match=match):
        PfSpec(**args)  # type: ignore[arg-type]


def test_profiles_are_looked_up_by_vf_ids() -> None:
    assert set(PROFILES) == {"x710", "cx5", "igb", "bf2"}
    assert profile_for_vf("8086", "10ca") is PROFILES["igb"]
    assert profile_for_vf("dead", "beef") is None
