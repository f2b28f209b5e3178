"""sriov.netlink against the real kernel: links, addresses, routes and VF requests in real netns."""

from __future__ import annotations

import errno
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from sriov.errors import DeviceNotFoundError, InvalidInputError, NetlinkOpError, VfSettingError
from sriov.netlink import Netlink, run_in_netns
from sriov.types import IfName, LinkState, MacAddress, VfSetting, VfSettings, VlanProto
from sriov.vfadmin import NetlinkVfAdmin
from tests.conftest import require_link_kind, unique

pytestmark = pytest.mark.root


@pytest.fixture
def nl() -> Iterator[Netlink]:
    with Netlink() as handle:
        yield handle


@pytest.fixture
def host_veth(nl: Netlink) -> Iterator[tuple[str, str]]:
    """A veth pair in the host netns, deleted afterwards."""
    a, b = unique(), unique()
    nl.create_veth(a, b)
    try:
        yield a, b
    finally:
        nl.delete_if_exists(a)


def ns_path(name: str) -> str:
    return f"/var/run/netns/{name}"


def test_link_attributes_in_a_netns(nl: Netlink, netns: str) -> None:
    ns = ns_path(netns)
    host_end, pod_end = unique(), unique()
    nl.create_veth(host_end, pod_end, b_netns=ns)
    try:
        assert nl.link(pod_end) is None  # it landed in the netns, not the host
        nl.set_mac(pod_end, "02:5e:00:00:00:01", ns)
        nl.set_mtu(pod_end, 1400, ns)
        nl.set_alias(pod_end, "pod uplink", ns)
        nl.add_altname(pod_end, "st-altname-longer-than-16", ns)
        nl.set_up(pod_end, ns)
        nl.set_up(host_end)
        info = nl.link(pod_end, ns)
        assert info is not None
        assert (info.mac, info.mtu, info.alias, info.up, info.kind) == (
            "02:5e:00:00:00:01", 1400, "pod uplink", True, "veth")
        assert info.altnames == ("st-altname-longer-than-16",)
        assert nl.link("st-altname-longer-than-16", ns) == info
        nl.del_altname(pod_end, "st-altname-longer-than-16", ns)
        assert nl.link(pod_end, ns).altnames == ()  # type: ignore[union-attr]

        nl.set_down(pod_end, ns)
        nl.rename(pod_end, "net1", ns)
        assert nl.link("net1", ns) is not None and nl.link(pod_end, ns) is None
        assert [link.name for link in nl.links(ns)] == ["lo", "net1"]
    finally:
        nl.delete_if_exists(host_end)


def test_rename_onto_an_existing_name_is_a_clear_error(
    nl: Netlink, host_veth: tuple[str, str]
) -> None:
    a, b = host_veth
    with pytest.raises(NetlinkOpError) as caught:
        nl.rename(a, b)
    assert caught.value.errno == errno.EEXIST
    assert str(caught.value).startswith(f"rename link {a} to {b}: EEXIST")


def test_move_to_netns_and_back_with_atomic_rename(
    nl: Netlink, netns: str, host_veth: tuple[str, str]
) -> None:
    ns = ns_path(netns)
    _, b = host_veth
    nl.move_to_netns(b, None, ns, new_name="eth9")
    assert nl.link(b) is None
    moved = nl.link("eth9", ns)
    assert moved is not None
    host_end = nl.link(host_veth[0])
    assert host_end is not None and host_end.netns_id is not None
    peer = nl.link_by_index(host_end.link_index or 0, target_nsid=host_end.netns_id)
    # the veth peer, read from the host through its nsid (netns_id is relative to the viewer)
    assert peer is not None and (peer.index, peer.name, peer.mac) == (
        moved.index,
        "eth9",
        moved.mac,
    )
    nl.move_to_netns("eth9", ns, None, new_name=b)
    assert nl.link(b) is not None and nl.link("eth9", ns) is None


def test_addresses_and_routes_in_a_netns(nl: Netlink, netns: str) -> None:
    ns = ns_path(netns)
    host_end, pod_end = unique(), unique()
    nl.create_veth(host_end, pod_end, b_netns=ns)
    try:
        nl.set_up(pod_end, ns)
        nl.add_address(pod_end, "10.77.0.2/24", ns)
        nl.add_route("default", "10.77.0.1", netns=ns)
        nl.add_route("10.78.0.0/16", "10.77.0.254", dev=pod_end, netns=ns, metric=50)
        v4 = [a.cidr for a in nl.addresses(pod_end, ns) if a.family == socket.AF_INET]
        assert v4 == ["10.77.0.2/24"]
        routes = {(r.dst, r.gateway, r.priority) for r in nl.routes(ns, family=socket.AF_INET)}
        assert (None, "10.77.0.1", None) in routes
        assert ("10.78.0.0/16", "10.77.0.254", 50) in routes
        # what `ip` sees must match
        shown = subprocess.run(
            ["ip", "-n", netns, "-4", "route"], capture_output=True, text=True, check=True
        )
        assert "default via 10.77.0.1" in shown.stdout
        nl.flush_addresses(pod_end, ns)
        assert [a for a in nl.addresses(pod_end, ns) if a.family == socket.AF_INET] == []
    finally:
        nl.delete_if_exists(host_end)


def test_macvlan_on_a_veth_master_lands_directly_in_the_netns(
    nl: Netlink, netns: str, host_veth: tuple[str, str]
) -> None:
    ns = ns_path(netns)
    master, _ = host_veth
    name = unique()
    nl.create_macvlan(name, master, "bridge", ns, mtu=1300, mac="02:00:00:aa:bb:cc")
    assert nl.link(name) is None
    info = nl.link(name, ns)
    assert info is not None
    assert (info.kind, info.mtu, info.mac) == ("macvlan", 1300, "02:00:00:aa:bb:cc")
    shown = subprocess.run(
        ["ip", "-n", netns, "-d", "link", "show", name], capture_output=True, text=True
    )
    assert "macvlan mode bridge" in shown.stdout


def test_bridge_and_master(nl: Netlink, host_veth: tuple[str, str]) -> None:
    a, _ = host_veth
    bridge = unique()
    nl.create_bridge(bridge)
    try:
        nl.set_master(a, bridge)
        assert nl.link(a).master_index == nl.index(bridge)  # type: ignore[union-attr]
        nl.set_master(a, None)
        assert nl.link(a).master_index is None  # type: ignore[union-attr]
    finally:
        nl.delete_if_exists(bridge)


def test_bridge_port_vlan_set_and_del(nl: Netlink, host_veth: tuple[str, str]) -> None:
    a, _ = host_veth
    bridge = unique()
    try:
        nl.create_bridge(bridge, vlan_filtering=True)
    except NetlinkOpError as e:
        if e.errno != errno.EOPNOTSUPP:
            raise
        pytest.skip(
            "this kernel lacks CONFIG_BRIDGE_VLAN_FILTERING (bridge vlan_filtering: EOPNOTSUPP)"
        )
    try:
        nl.set_master(a, bridge)
        nl.bridge_vlan_set(a, 42)
        shown = subprocess.run(
            ["bridge", "vlan", "show", "dev", a], capture_output=True, text=True
        ).stdout
        assert "42 PVID Egress Untagged" in shown
        nl.bridge_vlan_del(a, 42)
        shown = subprocess.run(
            ["bridge", "vlan", "show", "dev", a], capture_output=True, text=True
        ).stdout
        assert " 42 " not in shown
    finally:
        nl.delete_if_exists(bridge)


def test_bad_names_and_macs_are_refused_before_the_kernel(
    nl: Netlink, host_veth: tuple[str, str]
) -> None:
    a, _ = host_veth
    with pytest.raises(InvalidInputError, match="interface name"):
        nl.rename(a, "way-too-long-interface-name")
    with pytest.raises(InvalidInputError, match="MAC address"):
        nl.set_mac(a, "01:00:5e:00:00:01")  # multicast
    assert nl.link(a) is not None  # nothing was lost


def test_missing_links_and_netns_are_not_found_errors(nl: Netlink, netns: str) -> None:
    with pytest.raises(DeviceNotFoundError, match="st-nope"):
        nl.set_up("st-nope", ns_path(netns))
    with pytest.raises(DeviceNotFoundError, match="network namespace"):
        nl.links("/var/run/netns/st-no-such-ns")
    assert nl.delete_if_exists("st-nope") is False


def test_run_in_netns_reads_that_namespaces_sysctl(netns: str) -> None:
    subprocess.run(
        ["ip", "netns", "exec", netns, "sysctl", "-qw", "net.ipv4.ip_forward=1"], check=True
    )

    def read() -> str:
        return Path("/proc/sys/net/ipv4/ip_forward").read_text().strip()

    assert run_in_netns(ns_path(netns), read) == "1"
    assert run_in_netns(None, read) in ("0", "1")


def test_a_veth_has_no_vfs(nl: Netlink, host_veth: tuple[str, str]) -> None:
    assert nl.vf_states(host_veth[0]) == ()


@pytest.mark.parametrize("setting", list(VfSetting))
def test_kernel_refusal_of_each_vf_setting_names_it(
    nl: Netlink, host_veth: tuple[str, str], setting: VfSetting
) -> None:
    """veth has no ndo_set_vf_*: the real kernel answers, and the error must name the setting.

    The kernel parses IFLA_VF_INFO against ifla_vf_policy (minimum struct sizes) before it
    asks the driver, so only a well-formed request reaches veth's EOPNOTSUPP. The inner
    IFLA_VF_VLAN_INFO size is not policy-checked (the driver check comes first): its 16-byte
    layout is tested byte by byte in tests/unit/test_netlink_msg.py and on igb in tests/vm."""
    pf = IfName(host_veth[0])
    settings = VfSettings(mac=MacAddress("02:00:00:00:00:01"), vlan=5, vlan_proto=VlanProto.DOT1AD,
                          spoofchk=False, trust=True, link_state=LinkState.DISABLE, max_tx_rate=100)
    only = VfSettings(**{f: getattr(settings, f) for f in _fields_of(setting)})
    with pytest.raises(VfSettingError) as caught:
        NetlinkVfAdmin(nl).apply(pf, 0, only)
    err = caught.value
    assert err.setting == setting and err.applied == ()
    assert err.errno == errno.EOPNOTSUPP, err
    assert str(err).startswith(f"set VF {setting} {pf} vf 0: ")


def _fields_of(setting: VfSetting) -> tuple[str, ...]:
    return {
        VfSetting.VLAN: ("vlan", "vlan_proto"),
        VfSetting.MAC: ("mac",),
        VfSetting.TX_RATE: ("max_tx_rate",),
        VfSetting.SPOOFCHK: ("spoofchk",),
        VfSetting.TRUST: ("trust",),
        VfSetting.LINK_STATE: ("link_state",),
    }[setting]


def test_ipvlan_lands_in_the_netns(nl: Netlink, netns: str, host_veth: tuple[str, str]) -> None:
    require_link_kind("ipvlan")
    name = unique()
    nl.create_ipvlan(name, host_veth[0], "l2", ns_path(netns), mtu=1400)
    assert nl.link(name, ns_path(netns)).kind == "ipvlan"  # type: ignore[union-attr]


def test_vlan_sub_interface(nl: Netlink, host_veth: tuple[str, str]) -> None:
    require_link_kind("vlan")
    name = unique()
    nl.create_vlan(name, host_veth[0], 100)
    assert nl.link(name).kind == "vlan"  # type: ignore[union-attr]
