"""The PF name in switchdev mode is the uplink representor, as upstream (sriovnet's
``GetUplinkRepresentor``), even when a VF representor sorts first in ``<pf>/net/``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sriov.emulate.profiles import MELLANOX_BF2, MELLANOX_CX5
from sriov.emulate.tree import PfSpec, SysfsTreeBuilder
from sriov.errors import EmulationError
from sriov.pools import PoolConfig, select
from sriov.switchdev import is_uplink, uplink_representor
from sriov.sysfs import SysfsReader

PF = "0000:3b:00.0"
UPLINK = "ens785f0np0"
REPS = ("ens785f0_0", "ens785f0_1")  # the usual "<pf>_<vf>" udev names sort before it


def _switchdev_host(root: Path, *, switchdev: bool = True) -> SysfsTreeBuilder:
    tree = SysfsTreeBuilder(root)
    tree.add_pf(PfSpec(address=PF, ifname=UPLINK, profile=MELLANOX_CX5, num_vfs=2,
                       vf_ifnames=("ens785f0v0", "ens785f0v1")))
    if switchdev:
        tree.set_switchdev(PF, REPS)
    return tree


def _netdev(root: Path, name: str) -> Path:
    return root / "sys/class/net" / name


@pytest.mark.parametrize(("files", "expected"), [
    ({"phys_switch_id": "a0b1c2d3", "phys_port_name": "p0"}, True),
    ({"phys_switch_id": "a0b1c2d3", "phys_port_name": "p12"}, True),
    ({"phys_switch_id": "a0b1c2d3", "phys_port_name": "pf0vf1"}, False),  # a VF representor
    ({"phys_switch_id": "a0b1c2d3", "phys_port_name": "p0s1"}, False),
    ({"phys_switch_id": "", "phys_port_name": "p0"}, False),
    ({"phys_port_name": "p0"}, False),  # no eswitch (legacy ice, ...)
    ({"phys_switch_id": "a0b1c2d3"}, False),
    ({"phys_switch_id": "a0", "phys_port_name": "p0", "compat/devlink/mode": "switchdev"}, True),
    ({"phys_switch_id": "a0", "phys_port_name": "p0", "compat/devlink/mode": "legacy"}, False),
], ids=lambda v: ",".join(f"{k}={x}" for k, x in v.items()) if isinstance(v, dict) else str(v))
def test_what_counts_as_an_uplink(tmp_path: Path, files: dict[str, str], expected: bool) -> None:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text + "\n")
    assert is_uplink(str(tmp_path)) is expected


def test_emulated_switchdev_pf_mirrors_the_kernel(tmp_path: Path) -> None:
    _switchdev_host(tmp_path)
    pf_net = tmp_path / "sys/bus/pci/devices" / PF / "net"
    assert sorted(p.name for p in pf_net.iterdir()) == [REPS[0], REPS[1], UPLINK]
    assert (_netdev(tmp_path, UPLINK) / "phys_port_name").read_text().strip() == "p0"
    assert (_netdev(tmp_path, REPS[1]) / "phys_port_name").read_text().strip() == "pf0vf1"
    ids = {(_netdev(tmp_path, n) / "phys_switch_id").read_text() for n in (UPLINK, *REPS)}
    assert len(ids) == 1  # one eswitch
    assert (_netdev(tmp_path, REPS[0]) / "device").resolve() == (pf_net.parent).resolve()
    assert uplink_representor(str(pf_net.parent), [*REPS, UPLINK]) == UPLINK


def test_switchdev_needs_the_pf_netdev(tmp_path: Path) -> None:
    tree = SysfsTreeBuilder(tmp_path)
    tree.add_pf(PfSpec(address=PF, ifname=None, profile=MELLANOX_CX5, num_vfs=1))
    with pytest.raises(EmulationError, match="needs the PF's one netdev"):
        tree.set_switchdev(PF, ["r0"])


def test_vfs_of_a_switchdev_pf_are_named_after_the_uplink(tmp_path: Path) -> None:
    _switchdev_host(tmp_path)
    inventory = SysfsReader(tmp_path).inventory()
    [pf] = inventory.pfs
    assert (pf.uplink, pf.netdev) == (UPLINK, UPLINK)
    assert {vf.pf_netdev for vf in inventory.vfs} == {UPLINK}
    assert SysfsReader(tmp_path).vf(inventory.vfs[0].address).pf_netdev == UPLINK


def test_pfnames_match_the_uplink_as_upstream(tmp_path: Path) -> None:
    _switchdev_host(tmp_path)
    config = PoolConfig.parse({"resourceList": [
        {"resourceName": "by_rep", "selectors": {"pfNames": [REPS[0]]}},
        {"resourceName": "by_uplink", "selectors": {"pfNames": [f"{UPLINK.upper()}#1"]}}]})
    selection = select(config, SysfsReader(tmp_path).inventory())
    assert selection.pools["intel.com/by_rep"] == ()
    assert [vf.index for vf in selection.pools["intel.com/by_uplink"]] == [1]


def test_legacy_pf_keeps_its_first_netdev(tmp_path: Path) -> None:
    _switchdev_host(tmp_path, switchdev=False)
    [pf] = SysfsReader(tmp_path).inventory().pfs
    assert (pf.uplink, pf.netdev) == (None, UPLINK)


def test_sfs_of_a_switchdev_pf_name_the_uplink(tmp_path: Path) -> None:
    tree = SysfsTreeBuilder(tmp_path)
    tree.add_pf(PfSpec(address=PF, ifname="p0", profile=MELLANOX_BF2, num_vfs=1,
                       vf_ifnames=("p0v0",)))
    tree.set_switchdev(PF, ["eth0"])  # kernel-named representor, sorts before "p0"
    tree.add_sf(PF, 4, "p0s4")
    [sf] = [d for d in SysfsReader(tmp_path).inventory().others if d.aux_name]
    assert sf.pf_netdev == "p0"


def test_sriovctl_list_shows_the_uplink_first(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    from sriov.cli.main import main

    _switchdev_host(tmp_path)
    assert main(["list", "--sysfs-root", str(tmp_path), "--json"]) == 0
    [pf] = json.loads(capsys.readouterr().out)["pfs"]
    assert (pf["uplink"], pf["netdevs"]) == (UPLINK, [UPLINK, *REPS])
    assert main(["list", "--sysfs-root", str(tmp_path)]) == 0
    assert f"{UPLINK},{REPS[0]},{REPS[1]}" in capsys.readouterr().out
