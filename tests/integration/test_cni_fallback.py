"""Fallback mode end to end: real netns, real macvlan on a veth master, real reference plugins."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cni.protocol import SUPPORTED_VERSIONS
from tests.conftest import require_link_kind, unique
from tests.integration.test_cni_fallback_support import (  # noqa: F401 (fixtures)
    CNI_BIN,
    Cni,
    Lan,
    exec_plugin,
    lan,
    link_json,
    ns_links,
    ns_path,
    sh,
)

pytestmark = pytest.mark.root


@pytest.fixture
def cni(tmp_path: Path, lan: Lan) -> Cni:  # noqa: F811
    return Cni(tmp_path, lan.master)


def addresses(info: dict) -> list[str]:
    return [
        f"{a['local']}/{a['prefixlen']}"
        for a in info.get("addr_info", [])
        if a["scope"] == "global"
    ]


@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
def test_every_verb_in_every_cni_version(cni: Cni, netns: str, version: str) -> None:
    conf = cni.conf(version)
    result = cni.ok("ADD", conf, ns_path(netns))
    assert result is not None and result["cniVersion"] == version
    info = link_json(netns, "net1")
    assert info is not None and info["linkinfo"]["info_kind"] == "macvlan"
    assert "UP" in info["flags"]
    [address] = addresses(info)
    if version in ("0.1.0", "0.2.0"):
        assert result["ip4"]["ip"] == address
    else:
        assert result["interfaces"] == [
            {
                "name": "net1",
                "mac": info["address"],
                "sandbox": ns_path(netns),
                **({"mtu": info["mtu"]} if version >= "1.0.0" else {}),
            }
        ]
        assert [ip["address"] for ip in result["ips"]] == [address]
        assert all(ip["interface"] == 0 for ip in result["ips"])
    routes = json.loads(sh("ip", "-n", netns, "-j", "route").stdout)
    assert any(r["dst"] == "198.51.100.0/24" and r["gateway"] == "10.199.0.1" for r in routes)
    with_prev = {**conf, "prevResult": result}
    if version >= "0.4.0":
        cni.ok("CHECK", with_prev, ns_path(netns))
    if version >= "1.1.0":
        cni.ok("STATUS", conf, "")
        cni.ok(
            "GC",
            {**conf, "cni.dev/valid-attachments": [{"containerID": "st-c1", "ifname": "net1"}]},
            "",
        )
        assert link_json(netns, "net1") is not None, "GC removed a valid attachment"
    cni.ok("DEL", with_prev, ns_path(netns))
    assert link_json(netns, "net1") is None
    assert cni.leases() == [] and cni.records() == []


@pytest.mark.parametrize("mode", ["bridge", "private", "vepa", "passthru"])
def test_macvlan_modes(cni: Cni, netns: str, mode: str) -> None:
    conf = cni.conf(mode=mode)
    cni.ok("ADD", conf, ns_path(netns))
    info = link_json(netns, "net1")
    assert info is not None and info["linkinfo"]["info_data"]["mode"] == mode
    cni.ok("DEL", conf, ns_path(netns))


def test_mtu_and_mac_keys(cni: Cni, netns: str) -> None:
    conf = cni.conf(mtu=1280, mac="02:00:00:aa:bb:01")
    result = cni.ok("ADD", conf, ns_path(netns))
    info = link_json(netns, "net1")
    assert info is not None and info["mtu"] == 1280 and info["address"] == "02:00:00:aa:bb:01"
    assert result is not None and result["interfaces"][0]["mac"] == "02:00:00:aa:bb:01"
    cni.ok("CHECK", {**conf, "prevResult": result}, ns_path(netns))
    cni.ok("DEL", conf, ns_path(netns))


def test_mac_precedence_fallback_lt_cni_args_lt_runtime_config(cni: Cni, netns: str) -> None:
    conf = cni.conf(mac="02:00:00:aa:bb:01")
    cni.ok("ADD", conf, ns_path(netns), cni_args="IgnoreUnknown=true;MAC=02:00:00:aa:bb:02")
    assert link_json(netns, "net1")["address"] == "02:00:00:aa:bb:02"  # type: ignore[index]
    cni.ok("DEL", conf, ns_path(netns))
    conf = {**conf, "runtimeConfig": {"mac": "02:00:00:aa:bb:03"}}
    cni.ok("ADD", conf, ns_path(netns), cni_args="IgnoreUnknown=true;MAC=02:00:00:aa:bb:02")
    assert link_json(netns, "net1")["address"] == "02:00:00:aa:bb:03"  # type: ignore[index]
    cni.ok("DEL", conf, ns_path(netns))


def test_mtu_above_the_master_is_refused_and_nothing_is_left(cni: Cni, netns: str) -> None:
    error = cni.call("ADD", cni.conf(mtu=9000), ns_path(netns)).error
    assert error["code"] == 7 and "fallback.mtu" in error["msg"]
    assert ns_links(netns) == ["lo"] and cni.leases() == [] and cni.records() == []


def test_missing_master_names_it(cni: Cni, netns: str) -> None:
    error = cni.call("ADD", cni.conf(master="st-nosuch0"), ns_path(netns)).error
    assert error["code"] == 100 and "st-nosuch0" in error["msg"]


def test_pure_l2_without_ipam(cni: Cni, netns: str) -> None:
    result = cni.ok("ADD", cni.conf(ipam=None), ns_path(netns))
    assert result is not None and "ips" not in result and result["interfaces"][0]["name"] == "net1"
    assert "UP" in link_json(netns, "net1")["flags"]  # type: ignore[index]
    cni.ok("DEL", cni.conf(ipam=None), ns_path(netns))


def test_add_on_an_existing_ifname_fails_and_keeps_it(cni: Cni, netns: str) -> None:
    sh("ip", "-n", netns, "link", "add", "net1", "type", "veth", "peer", "name", "st-x0")
    error = cni.call("ADD", cni.conf(), ns_path(netns)).error
    assert "already exists" in error["msg"]
    assert link_json(netns, "net1")["linkinfo"]["info_kind"] == "veth"  # type: ignore[index]
    assert cni.leases() == [] and cni.records() == []


def test_idempotent_del(cni: Cni, netns: str) -> None:
    conf = cni.conf()
    result = cni.ok("ADD", conf, ns_path(netns))
    cni.ok("DEL", {**conf, "prevResult": result}, ns_path(netns))
    cni.ok("DEL", {**conf, "prevResult": result}, ns_path(netns))  # twice
    cni.ok("DEL", conf, ns_path(netns))  # no prevResult
    cni.ok("DEL", conf, "")  # no netns at all


def test_del_after_the_netns_is_gone_releases_the_ip(cni: Cni) -> None:
    name = unique("st-ns-")
    sh("ip", "netns", "add", name)
    try:
        conf = cni.conf()
        cni.ok("ADD", conf, ns_path(name))
        assert len(cni.leases()) == 1
    finally:
        sh("ip", "netns", "del", name)
    cni.ok("DEL", conf, ns_path(name))
    assert cni.leases() == [] and cni.records() == []


def test_rollback_when_ipam_fails(cni: Cni, netns: str) -> None:
    conf = cni.conf(ipam={"type": "st-no-such-ipam"})
    error = cni.call("ADD", conf, ns_path(netns)).error
    assert error["code"] == 104 and "st-no-such-ipam" in error["msg"]
    assert ns_links(netns) == ["lo"] and cni.records() == []


def test_rollback_after_ipam_releases_the_lease(cni: Cni, netns: str) -> None:
    # the route's gateway is not reachable from the allocated subnet: configuring it fails
    conf = cni.conf(
        ipam={
            "type": "host-local",
            "subnet": "10.199.0.0/16",
            "dataDir": str(cni.ipam_dir),
            "routes": [{"dst": "198.51.100.0/24", "gw": "192.0.2.1"}],
        }
    )
    error = cni.call("ADD", conf, ns_path(netns)).error
    assert error["code"] == 102, error
    assert ns_links(netns) == ["lo"] and cni.leases() == [] and cni.records() == []


def test_reference_host_local_by_exec_shares_the_store(cni: Cni, netns: str) -> None:
    conf = cni.conf()
    exec_ipam = {"SRIOV_CNI_EXEC_IPAM": "1"}  # always exec /usr/lib/cni/host-local
    cni.ok("ADD", conf, ns_path(netns), extra=exec_ipam)
    [lease] = cni.leases()
    owner = (cni.ipam_dir / "st-fbnet" / lease).read_bytes().decode()
    assert owner == "st-c1\r\nnet1"  # written by the Go binary
    cni.ok("DEL", conf, ns_path(netns))  # released by the in-process allocator
    assert cni.leases() == []


def test_chained_with_reference_tuning(cni: Cni, netns: str, tmp_path: Path) -> None:
    conf = cni.conf()
    result = cni.ok("ADD", conf, ns_path(netns))
    tuning = {
        "cniVersion": "1.0.0",
        "name": "st-fbnet",
        "type": "tuning",
        "mtu": 1300,
        "sysctl": {"net.ipv4.conf.IFNAME.arp_ignore": "2"},
        "dataDir": str(tmp_path / "tuning"),
        "prevResult": result,
    }
    env = cni.env("ADD", ns_path(netns))
    reply = exec_plugin(CNI_BIN / "tuning", env, tuning)
    assert reply.rc == 0, reply
    final = reply.out
    assert link_json(netns, "net1")["mtu"] == 1300  # type: ignore[index]
    arp = sh("ip", "netns", "exec", netns, "cat", "/proc/sys/net/ipv4/conf/net1/arp_ignore").stdout
    assert arp.strip() == "2"
    # DEL in reverse order, every plugin gets the final result
    assert exec_plugin(CNI_BIN / "tuning", cni.env("DEL", ns_path(netns)),
                       {**tuning, "prevResult": final}).rc == 0
    cni.ok("DEL", {**conf, "prevResult": final}, ns_path(netns))
    assert link_json(netns, "net1") is None and cni.leases() == []


def test_check_detects_a_missing_address(cni: Cni, netns: str) -> None:
    conf = cni.conf()
    result = cni.ok("ADD", conf, ns_path(netns))
    sh("ip", "-n", netns, "addr", "flush", "dev", "net1")
    error = cni.call("CHECK", {**conf, "prevResult": result}, ns_path(netns)).error
    assert "missing" in error["msg"]
    cni.ok("DEL", conf, ns_path(netns))


def test_ipvlan_modes(cni: Cni, netns: str) -> None:
    require_link_kind("ipvlan")
    for mode in ("l2", "l3", "l3s"):
        conf = cni.conf(type="ipvlan", mode=mode)
        cni.ok("ADD", conf, ns_path(netns))
        info = link_json(netns, "net1")
        assert info is not None and info["linkinfo"]["info_kind"] == "ipvlan"
        cni.ok("DEL", conf, ns_path(netns))


def test_vlan_parent_is_created_and_removed(cni: Cni, netns: str) -> None:
    require_link_kind("vlan")
    conf = cni.conf(vlan=42)
    cni.ok("ADD", conf, ns_path(netns))
    assert sh("ip", "link", "show", f"{cni.master}.42", check=False).returncode == 0
    cni.ok("DEL", conf, ns_path(netns))
    assert sh("ip", "link", "show", f"{cni.master}.42", check=False).returncode != 0


def test_reference_binaries_present() -> None:
    missing = [p for p in ("macvlan", "host-local", "tuning", "dhcp") if not (CNI_BIN / p).exists()]
    assert not missing, f"containernetworking-plugins missing: {missing}"
    assert shutil.which("ip")
