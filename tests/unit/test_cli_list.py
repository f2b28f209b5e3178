"""``sriovctl list``: what an operator sees, table and JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sriov.cli.list import resolve_root
from sriov.cli.main import main
from sriov.emulate.profiles import MELLANOX_CX5
from sriov.emulate.tree import PfSpec, SysfsTreeBuilder
from sriov.inventory_format import format_inventory
from sriov.sysfs import SysfsReader
from sriov.types import Inventory


@pytest.fixture
def root(tmp_path: Path) -> Path:
    b = SysfsTreeBuilder(tmp_path)
    b.add_pf(PfSpec(address="0000:3b:00.0", ifname="ens1f0", num_vfs=3, numa_node=0,
                    vf_ifnames=("ens1f0v0", None, None), vf_drivers={1: "vfio-pci"}))
    b.add_pf(PfSpec(address="0000:5e:00.0", ifname="enp94s0f0", profile=MELLANOX_CX5,
                    num_vfs=1, vf_ifnames=("enp94s0f0v0",)))
    b.add_pf(PfSpec(address="0000:af:00.0", ifname="ens2f0", num_vfs=0))
    (tmp_path / "sys/bus/pci/devices/0000:af:00.0/sriov_totalvfs").write_text("abc\n")
    return tmp_path


def test_table_shows_what_an_operator_checks(root: Path) -> None:
    text = format_inventory(SysfsReader(root).inventory())
    lines = text.splitlines()
    pf_line = next(line for line in lines if line.startswith("0000:3b:00.0"))
    assert pf_line.split() == ["0000:3b:00.0", "i40e", "ens1f0", "3/64", "0", "ether", "1500",
                               "8086:1572"]
    vfio = next(line for line in lines if "0000:3b:02.1" in line)
    assert vfio.startswith("    ") and vfio.split()[2:4] == ["vfio-pci", "(vfio)"]
    no_netdev = next(line for line in lines if "0000:3b:02.2" in line)
    assert no_netdev.split()[3] == "-"
    rdma = next(line for line in lines if "enp94s0f0v0" in line)
    assert rdma.split()[6] == "yes"
    assert "Skipped 1 device(s):" in text
    assert "sriov_totalvfs is not an integer: 'abc'" in text


def test_empty_inventory_says_so() -> None:
    assert "No SR-IOV network PFs found." in format_inventory(Inventory(pfs=(), vfs=()))


def test_list_json(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "--sysfs-root", str(root), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["schemaVersion"] == 1
    pf = doc["pfs"][0]
    assert (pf["address"], pf["driver"], pf["numVfs"], pf["totalVfs"]) == (
        "0000:3b:00.0", "i40e", 3, 64)
    assert [v["netdev"] for v in pf["vfs"]] == ["ens1f0v0", None, None]
    assert pf["vfs"][1]["driverKind"] == "vfio"
    assert doc["pfs"][1]["vfs"][0]["rdma"] is True
    assert doc["skipped"][0]["reason"] == "sriov_totalvfs is not an integer: 'abc'"


def test_list_table_via_main(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "--sysfs-root", str(root)]) == 0
    assert "0000:5e:00.0" in capsys.readouterr().out


def test_missing_root_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "--sysfs-root", str(tmp_path / "nope")]) == 1
    err = capsys.readouterr().err
    assert "sriovctl: error:" in err and "no PCI device list" in err
    assert "Traceback" not in err


def test_root_from_flag_then_env_then_slash(tmp_path: Path) -> None:
    assert resolve_root(tmp_path, {"SRIOV_SYSFS_ROOT": "/elsewhere"}) == tmp_path
    assert resolve_root(None, {"SRIOV_SYSFS_ROOT": str(tmp_path)}) == tmp_path
    assert resolve_root(None, {}) == Path("/")
