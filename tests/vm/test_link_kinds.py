"""The guest kernel creates the link kinds the host kernel lacks (ipvlan, 8021q vlan)."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.conftest import link_kind_supported, unique
from tests.vm import hw
from tests.vm.conftest import EnableVfs, link_with_carrier


def ip(*argv: str) -> None:
    subprocess.run(["ip", *argv], check=True)


def link_kind(name: str, netns: str) -> str:
    out = subprocess.run(["ip", "-n", netns, "-j", "-d", "link", "show", "dev", name],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)[0]["linkinfo"]["info_kind"]


@pytest.mark.parametrize("kind", ["ipvlan", "vlan"])
def test_shared_probe_sees_the_kind(kind: str) -> None:
    assert link_kind_supported(kind), f"tests.conftest.require_link_kind({kind!r}) would skip"


@pytest.mark.parametrize(
    ("kind", "extra"),
    [("ipvlan", ["mode", "l2"]), ("vlan", ["id", "100"])],
    ids=["ipvlan-l2", "8021q"],
)
def test_link_kind_on_a_veth_inside_a_netns(netns: str, kind: str, extra: list[str]) -> None:
    child = unique("st-")
    ip("-n", netns, "link", "add", "st-p0", "type", "veth", "peer", "st-p1")
    ip("-n", netns, "link", "add", "link", "st-p0", "name", child, "type", kind, *extra)

    assert link_kind(child, netns) == kind  # deleted with the netns


@pytest.mark.parametrize(
    ("kind", "extra"),
    [("ipvlan", ["mode", "l2"]), ("vlan", ["proto", "802.1ad", "id", "7"])],
    ids=["ipvlan-l2", "8021ad"],
)
def test_link_kind_on_a_vf_inside_a_netns(sriov_pf: hw.RealPf, enable_vfs: EnableVfs,
                                          netns: str, kind: str, extra: list[str]) -> None:
    parent, child = str(enable_vfs(sriov_pf, 1)[0].netdev), unique("st-")
    ip("link", "set", parent, "netns", netns)
    try:
        ip("-n", netns, "link", "add", "link", parent, "name", child, "type", kind, *extra)
        assert link_kind(child, netns) == kind
        ip("-n", netns, "link", "del", child)
    finally:
        ip("-n", netns, "link", "set", parent, "netns", "1")


def test_8021q_on_a_vf_once_the_vf_has_carrier(sriov_pf: hw.RealPf,
                                                enable_vfs: EnableVfs) -> None:
    # igbvf asks the PF for a VLAN filter over the mailbox; igb refuses (EINVAL) until the
    # VF has finished its reset handshake, i.e. until the VF link is up with carrier.
    vf = enable_vfs(sriov_pf, 1)[0]
    parent, child = str(vf.netdev), unique("st-")
    link_with_carrier(str(sriov_pf.netdev))
    link_with_carrier(parent)

    ip("link", "add", "link", parent, "name", child, "type", "vlan", "id", "100")
    try:
        out = subprocess.run(["ip", "-j", "-d", "link", "show", "dev", child], check=True,
                             capture_output=True, text=True).stdout
        assert json.loads(out)[0]["linkinfo"]["info_data"]["id"] == 100
    finally:
        ip("link", "del", child)
