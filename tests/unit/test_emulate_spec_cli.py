"""``sriovctl emulate`` in tree-only mode (``--no-netdevs``: no root, no links needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sriov.cli.main import main
from sriov.sysfs import SysfsReader


def test_tree_only_host_up_status_bind_numvfs_carrier_down(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "emu"
    assert main(["emulate", "up", "--root", str(root), "--no-netdevs", "--pfs", "2",
                 "--vfs", "3", "--vfio", "1", "--profile", "igb"]) == 0
    assert f"sriovctl list --sysfs-root {root}" in capsys.readouterr().out
    inv = SysfsReader(root).inventory()
    assert (len(inv.pfs), len(inv.vfs)) == (2, 6)
    assert [v.driver for v in inv.vfs_of("0000:3b:00.0")] == ["igbvf", "igbvf", "vfio-pci"]
    assert inv.vfs_of("0000:3b:00.0")[0].netdev == "sriovpf0v0"

    vfio_vf = inv.vfs_of("0000:3b:00.0")[2].address
    assert main(["emulate", "bind", "--root", str(root), vfio_vf, "igbvf"]) == 0
    assert SysfsReader(root).vf(vfio_vf).netdev == "sriovpf0v2"
    assert main(["emulate", "numvfs", "--root", str(root), "sriovpf1", "0"]) == 0
    assert SysfsReader(root).inventory().vfs_of("0000:3b:00.1") == ()
    assert main(["emulate", "carrier", "--root", str(root), "0000:3b:00.0", "down"]) == 0
    assert (root / "sys/class/net/sriovpf0/carrier").read_text().strip() == "0"
    capsys.readouterr()
    assert main(["emulate", "status", "--root", str(root), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["pfs"][0]["carrier"] is False and len(status["vfs"]) == 3

    assert main(["emulate", "down", "--root", str(root)]) == 0
    assert not (root / "sys").exists() and not (root / "sriov-emu.json").exists()


def test_errors_are_one_line_naming_the_problem(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "emu"
    assert main(["emulate", "up", "--root", str(root), "--no-netdevs", "--vfs", "9000"]) == 1
    assert "invalid vfs 9000" in capsys.readouterr().err
    assert main(["emulate", "status", "--root", str(root)]) == 1
    assert "emulate up" in capsys.readouterr().err
    assert main(["emulate", "up", "--root", str(root), "--no-netdevs"]) == 0
    assert main(["emulate", "up", "--root", str(root), "--no-netdevs"]) == 1
    assert "down" in capsys.readouterr().err
    assert main(["emulate", "bind", "--root", str(root), "0000:3b:02.0", "e1000"]) == 1
    assert "iavf" in capsys.readouterr().err
    assert main(["emulate", "numvfs", "--root", str(root), "eth7", "1"]) == 1
    assert "known PFs" in capsys.readouterr().err
    assert main(["emulate", "down", "--root", str(root)]) == 0


def test_tree_beyond_the_profile_vf_limit(tmp_path: Path) -> None:
    root = tmp_path / "big"
    assert main(["emulate", "up", "--root", str(root), "--no-netdevs", "--pfs", "1",
                 "--vfs", "70"]) == 0
    assert len(SysfsReader(root).inventory().vfs) == 70  # x710 reports 64


def test_classes_showcase_is_listed_with_classes_and_char_devices(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "emu"
    assert main(["emulate", "up", "--root", str(root), "--no-netdevs", "--pfs", "1",
                 "--vfs", "3", "--profile", "bf2", "--classes", "--noiommu", "--vfio", "1"]) == 0
    assert main(["emulate", "bind", "--root", str(root), "0000:3b:00.2", "uio_pci_generic"]) == 0
    capsys.readouterr()
    assert main(["list", "--sysfs-root", str(root)]) == 0
    text = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in text.splitlines() if line.strip()}
    assert "vf/uio+rdma" in rows["0"] and "uio0" in rows["0"][-1]
    assert "vf/vdpa-vhost+rdma" in rows["1"] and "vhost-vdpa-0" in rows["1"][-1]
    assert "vf/vfio-noiommu+rdma" in rows["2"] and "vfio/noiommu-" in rows["2"][-1]
    assert rows["mlx5_core.sf.0"][1] == "sf+rdma"
    accel = [r for r in rows.values() if r[1].startswith("accelerator")]
    # noiommu mode is host-wide: the FEC VFs on vfio-pci get no-IOMMU groups too
    assert [r[1] for r in accel] == ["accelerator", *["accelerator/vfio-noiommu"] * 2]
    nic = next(r for r in rows.values() if r[1] == "nic")
    assert nic[2:4] == ["virtio-pci", "sriovpfnic0"] and nic[5] == "1af4:1041"
    assert main(["emulate", "down", "--root", str(root)]) == 0
    assert not (root / "dev").exists()
