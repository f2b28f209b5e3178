"""``sriovctl pools`` end to end over an emulated sysfs tree (the real on-disk layout)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from sriov.cli.main import build_parser, main
from sriov.emulate.tree import PfSpec, SysfsTreeBuilder

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "configs" / "pools" / "demo.json"
PF_ADDRESSES = ("0000:3b:00.0", "0000:5e:00.0")


@pytest.fixture
def host(tmp_path: Path) -> Path:
    """Two X710 PFs ``sriovpf0/1`` with 4 VFs each; VF 3 of each is bound to vfio-pci."""
    root = tmp_path / "host"
    builder = SysfsTreeBuilder(root)
    for p, address in enumerate(PF_ADDRESSES):
        builder.add_pf(PfSpec(
            address=address, ifname=f"sriovpf{p}", num_vfs=4,
            vf_ifnames=tuple(f"sriovpf{p}v{i}" if i < 3 else None for i in range(4)),
            vf_drivers={3: "vfio-pci"}))
    return root


def run(*argv: str) -> tuple[int, str, str]:
    args = build_parser().parse_args(["pools", *argv])
    out, err = io.StringIO(), io.StringIO()
    code = args.func(args, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_demo_config_splits_netdevice_and_dpdk_vfs(host: Path) -> None:
    code, out, err = run("--config", str(DEMO), "--sysfs-root", str(host), "--json")
    assert code == 0 and err == ""
    doc = json.loads(out)
    pools = {p["resourceName"]: p["vfs"] for p in doc["pools"]}
    netdevs = pools["intel.com/sriov_netdevice"]
    assert [(v["pfName"], v["vfIndex"]) for v in netdevs] == [
        ("sriovpf0", 0), ("sriovpf0", 1), ("sriovpf0", 2),
        ("sriovpf1", 0), ("sriovpf1", 1), ("sriovpf1", 2)]
    assert {v["driver"] for v in netdevs} == {"iavf"}
    dpdk = pools["intel.com/sriov_dpdk"]
    assert [(v["pfName"], v["vfIndex"], v["driver"], v["netdev"]) for v in dpdk] == [
        ("sriovpf0", 3, "vfio-pci", None), ("sriovpf1", 3, "vfio-pci", None)]
    assert doc["notSelected"] == [] and doc["warnings"] == []


def test_text_output_explains_unselected_vfs(host: Path, tmp_path: Path) -> None:
    config = tmp_path / "pools.json"
    config.write_text(json.dumps({"resourceList": [
        {"resourceName": "few", "selectors": [{"pfNames": ["sriovpf0#0-1"]}]}]}))
    code, out, _ = run("--config", str(config), "--sysfs-root", str(host),
                       "--resource-prefix", "example.org")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "example.org/few: 2 VFs"
    assert "not selected: 6 VFs" in lines
    assert "      example.org/few: pfNames: sriovpf0 VF 2 not in #0-1" in lines
    assert "      example.org/few: pfNames: PF sriovpf1 not in [sriovpf0#0-1]" in lines


def test_doubtful_config_warns_and_strict_config_exits_2(host: Path, tmp_path: Path) -> None:
    config = tmp_path / "doubtful.json"
    config.write_text(json.dumps({"resourceList": [
        {"resourceName": "a", "selectors": [{"pfName": ["sriovpf0"]}]},
        {"resourceName": "b", "selectors": [{"pfNames": ["sriovpf0#3-1"]}]}]}))
    code, out, err = run("--config", str(config), "--sysfs-root", str(host))
    assert code == 0  # upstream accepts it: 'pfName' is ignored, '3-1' selects nothing
    assert ("warning: resourceList[0].selectors[0].pfName: unknown key, ignored (as upstream); "
            "did you mean 'pfNames'?") in out.splitlines()
    assert "intel.com/a: 8 VFs" in out and "intel.com/b: 0 VFs" in out
    code, out, err = run("--config", str(config), "--sysfs-root", str(host), "--strict-config")
    assert code == 2 and out == ""
    assert "resourceList[0].selectors[0].pfName: unknown key, ignored (as upstream); " \
           "did you mean 'pfNames'?" in err
    assert "resourceList[1].selectors[0].pfNames[0]: 'sriovpf0#3-1'" in err
    assert "Traceback" not in err


def test_config_upstream_rejects_exits_2(host: Path, tmp_path: Path) -> None:
    config = tmp_path / "bad.json"
    config.write_text(json.dumps({"resourceList": [
        {"resourceName": "a", "selectors": [{"pfNames": "sriovpf0"}]},
        {"resourceName": "b"}]}))
    code, out, err = run("--config", str(config), "--sysfs-root", str(host))
    assert code == 2 and out == ""
    assert "resourceList[0].selectors[0].pfNames: expected a list of strings" in err
    assert "resourceList[1].selectors: required" in err
    assert "Traceback" not in err


def test_missing_config_file_exits_2(host: Path, tmp_path: Path) -> None:
    code, _, err = run("--config", str(tmp_path / "nope.json"), "--sysfs-root", str(host))
    assert code == 2 and "cannot read" in err


def test_unbound_vf_is_listed_but_not_pooled_with_a_reason(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "host"
    SysfsTreeBuilder(root).add_pf(PfSpec(address=PF_ADDRESSES[0], ifname="sriovpf0", num_vfs=3,
                                         vf_ifnames=("sriovpf0v0", "sriovpf0v1", None),
                                         vf_drivers={2: None}))
    config = tmp_path / "pools.json"
    config.write_text(json.dumps({"resourceList": [{"resourceName": "all", "selectors": [{}]}]}))
    code, out, _ = run("--config", str(config), "--sysfs-root", str(root), "--json")
    doc = json.loads(out)
    assert code == 0
    assert [v["pciAddress"] for v in doc["pools"][0]["vfs"]] == ["0000:3b:02.0", "0000:3b:02.1"]
    [unbound] = doc["notSelected"]
    assert (unbound["pciAddress"], unbound["driver"]) == ("0000:3b:02.2", None)
    assert unbound["reasons"][0].startswith("not bound to a driver (no driver link)")
    assert main(["list", "--sysfs-root", str(root)]) == 0
    assert "0000:3b:02.2" in capsys.readouterr().out


def test_sriovctl_pools_shows_every_device_class(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from sriov.emulate.profiles import INTEL_N3000_FEC, MELLANOX_BF2

    tree = SysfsTreeBuilder(tmp_path / "host")
    tree.add_pf(PfSpec(address="0000:3b:00.0", ifname="p0", profile=MELLANOX_BF2, num_vfs=0))
    tree.add_sf("0000:3b:00.0", 7, "p0s7")
    tree.add_pf(PfSpec(address="0000:af:00.0", ifname=None, profile=INTEL_N3000_FEC,
                       num_vfs=1))
    config = tmp_path / "pools.json"
    config.write_text(json.dumps({"resourceList": [
        {"resourceName": "sf", "deviceType": "auxNetDevice", "selectors": [{"auxTypes": ["sf"]}]},
        {"resourceName": "fec", "deviceType": "accelerator", "selectors": [{"devices": ["0d90"]}]},
        {"resourceName": "none", "selectors": [{"vendors": ["8086"]}]}]}))
    assert main(["pools", "--config", str(config), "--sysfs-root", str(tmp_path / "host")]) == 0
    out = capsys.readouterr().out
    assert "intel.com/sf: 1 device\n  mlx5_core.sf.0  p0 SF 7  15b3:a2d6" in out
    assert "intel.com/fec: 1 device\n  0000:af:00.1  accelerator" in out
    # the PF without VFs is a NIC candidate of the netDevice pool, and says why it is left out
    assert "  0000:3b:00.0  nic  15b3:a2d6  mlx5_core  p0\n      intel.com/none: vendors: " \
           "15b3 not in [8086]" in out
