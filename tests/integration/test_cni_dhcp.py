"""Fallback macvlan with the reference dhcp IPAM against a real dnsmasq (no mocks)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_cni_dhcp_support import DhcpServices, dhcp_services
from tests.integration.test_cni_fallback_support import (  # noqa: F401 (fixtures)
    Cni,
    Lan,
    lan,
    link_json,
    ns_links,
    ns_path,
    wait_for,
)

pytestmark = pytest.mark.root


@pytest.fixture
def dhcp(tmp_path: Path, lan: Lan) -> Iterator[DhcpServices]:  # noqa: F811
    with dhcp_services(tmp_path / "dhcp", lan) as services:
        yield services


def test_dhcp_lease_configured_and_released(tmp_path: Path, lan: Lan, netns: str,  # noqa: F811
                                            dhcp: DhcpServices) -> None:
    cni = Cni(tmp_path, lan.master)
    conf = cni.conf("1.0.0", ipam=dhcp.ipam())
    result = cni.ok("ADD", conf, ns_path(netns))
    assert result is not None
    [ip] = result["ips"]
    assert ipaddress.ip_interface(ip["address"]) in ipaddress.ip_network("10.123.0.0/24")
    assert ip["interface"] == 0
    info = link_json(netns, "net1")
    assert info is not None
    assert [f"{a['local']}/{a['prefixlen']}" for a in info["addr_info"] if a["family"] == "inet"] \
        == [ip["address"]]
    mac = result["interfaces"][0]["mac"]
    assert mac in dhcp.leased_macs(), "dnsmasq has no lease for the pod's MAC"
    cni.ok("CHECK", {**conf, "prevResult": result}, ns_path(netns))
    cni.ok("DEL", {**conf, "prevResult": result}, ns_path(netns))
    assert link_json(netns, "net1") is None
    wait_for(lambda: mac not in dhcp.leased_macs(), "dnsmasq to drop the released lease")
    cni.ok("DEL", conf, ns_path(netns))  # idempotent: the daemon has no lease any more


def test_dhcp_failure_rolls_back(tmp_path: Path, lan: Lan, netns: str) -> None:  # noqa: F811
    cni = Cni(tmp_path, lan.master)
    conf = cni.conf(
        "1.0.0", ipam={"type": "dhcp", "daemonSocketPath": str(tmp_path / "no-daemon.sock")}
    )
    error = cni.call("ADD", conf, ns_path(netns)).error
    assert "dhcp" in error["msg"].lower(), error
    assert ns_links(netns) == ["lo"], "the macvlan was not rolled back"
    assert cni.records() == []
