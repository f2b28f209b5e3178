"""``sriovctl nad``: generated NADs are valid manifests for the right pool; bad input is named."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from sriov.cli.main import main
from sriov.errors import InvalidInputError
from sriov.nad import (
    RESOURCE_NAME_ANNOTATION,
    IpamKind,
    NadOptions,
    build_nad,
    default_nad_name,
    render_yaml,
)
from tests.unit.test_manifests import pool_config_text, validate_nad

POOLS = {"resourceList": [
    {"resourceName": "sriov_netdevice", "resourcePrefix": "intel.com",
     "selectors": [{"vendors": ["8086"], "drivers": ["iavf"]}]},
    {"resourceName": "sriov_dpdk", "resourcePrefix": "intel.com",
     "selectors": [{"drivers": ["vfio-pci", "igb_uio"]}]},
    {"resourceName": "sriov_netdevice", "resourcePrefix": "example.org",
     "selectors": [{"drivers": ["igbvf"]}]},
]}


@pytest.fixture
def pool_file(tmp_path: Path) -> Path:
    path = tmp_path / "pools.json"
    path.write_text(json.dumps(POOLS))
    return path


def run_nad(
    capsys: pytest.CaptureFixture[str], pool_file: Path, *args: str
) -> tuple[int, str, str]:
    rc = main(["nad", "--config", str(pool_file), *args])
    out, err = capsys.readouterr()
    return rc, out, err


def generated(
    capsys: pytest.CaptureFixture[str], pool_file: Path, *args: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    rc, out, err = run_nad(capsys, pool_file, *args)
    assert rc == 0, err
    doc = yaml.safe_load(out)
    return doc, validate_nad(doc)


def test_netdevice_pool_nad_with_all_vf_options(
    capsys: pytest.CaptureFixture[str], pool_file: Path
) -> None:
    doc, config = generated(
        capsys,
        pool_file,
        "--pool",
        "intel.com/sriov_netdevice",
        "--vlan",
        "100",
        "--subnet",
        "10.56.217.0/24",
        "--mtu",
        "9000",
        "--spoofchk",
        "on",
        "--trust",
        "off",
        "--namespace",
        "tenant-a",
    )
    assert doc["metadata"] == {
        "name": "sriov-netdevice",
        "namespace": "tenant-a",
        "annotations": {RESOURCE_NAME_ANNOTATION: "intel.com/sriov_netdevice"},
    }
    assert config == {
        "cniVersion": "1.0.0",
        "name": "sriov-netdevice",
        "type": "sriov",
        "vlan": 100,
        "spoofchk": "on",
        "trust": "off",
        "mtu": 9000,
        "ipam": {"type": "host-local", "subnet": "10.56.217.0/24"},
    }
    assert "deviceID" not in config, "Multus injects deviceID from the allocated VF"


def test_dpdk_pool_gets_no_ipam_by_default(
    capsys: pytest.CaptureFixture[str], pool_file: Path
) -> None:
    doc, config = generated(capsys, pool_file, "--pool", "intel.com/sriov_dpdk", "--vlan", "200")
    assert "ipam" not in config
    assert doc["metadata"]["annotations"][RESOURCE_NAME_ANNOTATION] == "intel.com/sriov_dpdk"


@pytest.mark.parametrize(("args", "ipam"), [
    (["--ipam", "dhcp"], {"type": "dhcp"}),
    (["--ipam", "static", "--address", "10.1.1.5/24"],
     {"type": "static", "addresses": [{"address": "10.1.1.5/24"}]}),
    (["--address", "fd00::5/64"], {"type": "static", "addresses": [{"address": "fd00::5/64"}]}),
    (["--ipam", "none"], None),
], ids=["dhcp", "static", "static-implied-v6", "none"])
def test_ipam_choices(capsys: pytest.CaptureFixture[str], pool_file: Path,
                      args: list[str], ipam: dict[str, Any] | None) -> None:
    _, config = generated(capsys, pool_file, "--pool", "intel.com/sriov_netdevice", *args)
    assert config.get("ipam") == ipam


def test_bare_pool_name_and_custom_nad_name(
    capsys: pytest.CaptureFixture[str], pool_file: Path
) -> None:
    doc, config = generated(capsys, pool_file, "--pool", "sriov_dpdk", "--name", "fast-path")
    assert doc["metadata"]["name"] == config["name"] == "fast-path"


def test_unknown_pool_is_rejected_listing_the_pools(
    capsys: pytest.CaptureFixture[str], pool_file: Path
) -> None:
    rc, out, err = run_nad(capsys, pool_file, "--pool", "intel.com/nope")
    assert (rc, out) == (1, "")
    assert "--pool" in err and "intel.com/nope" in err and "not in the pool config" in err
    assert "intel.com/sriov_dpdk, intel.com/sriov_netdevice" in err
    assert "Traceback" not in err


def test_ambiguous_bare_pool_name_is_rejected(
    capsys: pytest.CaptureFixture[str], pool_file: Path
) -> None:
    rc, _, err = run_nad(capsys, pool_file, "--pool", "sriov_netdevice")
    assert rc == 1 and "ambiguous" in err and "example.org/sriov_netdevice" in err


@pytest.mark.parametrize(("args", "field"), [
    (["--vlan", "4095", "--subnet", "10.0.0.0/24"], "--vlan"),
    (["--subnet", "10.0.0.1/24"], "--subnet"),
    (["--subnet", "10.0.0.0/31"], "--subnet"),
    (["--ipam", "host-local"], "--subnet"),
    (["--ipam", "dhcp", "--subnet", "10.0.0.0/24"], "--subnet"),
    (["--ipam", "static"], "--address"),
    (["--address", "10.0.0.5"], "--address"),
    (["--mtu", "50", "--ipam", "none"], "--mtu"),
    (["--name", "Bad_Name", "--ipam", "none"], "--name"),
    (["--namespace", "a.b", "--ipam", "none"], "--namespace"),
], ids=lambda v: " ".join(v) if isinstance(v, list) else v)
def test_bad_input_names_the_flag(capsys: pytest.CaptureFixture[str], pool_file: Path,
                                  args: list[str], field: str) -> None:
    rc, out, err = run_nad(capsys, pool_file, "--pool", "intel.com/sriov_netdevice", *args)
    assert (rc, out) == (1, "")
    assert f"invalid {field}" in err and "Traceback" not in err


def test_mtu_on_a_dpdk_pool_is_rejected(
    capsys: pytest.CaptureFixture[str], pool_file: Path
) -> None:
    rc, _, err = run_nad(capsys, pool_file, "--pool", "intel.com/sriov_dpdk", "--mtu", "9000")
    assert rc == 1 and "--mtu" in err and "DPDK" in err


def test_missing_config_file_is_a_clear_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    rc, _, err = run_nad(capsys, tmp_path / "absent.json", "--pool", "x")
    assert rc == 1 and "absent.json" in err and "cannot read" in err


def test_every_pool_of_the_shipped_configmap_yields_a_valid_nad(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from sriov.pools import parse_pool_config

    path = tmp_path / "config.json"
    path.write_text(pool_config_text())
    for pool in parse_pool_config(pool_config_text()).pools:
        doc, _ = generated(capsys, path, "--pool", pool.full_name, "--subnet", "10.9.0.0/24",
                           *(["--ipam", "host-local"] if "dpdk" in pool.resource_name else []))
        assert doc["metadata"]["annotations"][RESOURCE_NAME_ANNOTATION] == pool.full_name


# ---------------------------------------------------------------- pure generator

@pytest.mark.parametrize(("resource", "name"), [
    ("intel.com/sriov_netdevice", "sriov-netdevice"),
    ("nvidia.com/MLNX_RDMA", "mlnx-rdma"),
    ("x.io/__", "sriov-network"),
])
def test_default_nad_name_is_a_valid_dns_name(resource: str, name: str) -> None:
    assert default_nad_name(resource) == name


@pytest.mark.parametrize("name", ["a", "net-1", "x" * 253, "a.b-c"])
def test_rendered_yaml_parses_back_to_the_same_object(name: str) -> None:
    nad = build_nad(NadOptions(name=name, resource_name="intel.com/r", ipam=IpamKind.DHCP, vlan=0))
    assert yaml.safe_load(render_yaml(nad)) == nad


def test_resource_name_must_have_a_prefix() -> None:
    with pytest.raises(InvalidInputError, match="resource name"):
        build_nad(NadOptions(name="n", resource_name="bare", ipam=IpamKind.NONE))
