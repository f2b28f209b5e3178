"""The fewer-round-trips paths of sriov.netlink (the CNI hot path) against the real kernel:
links addressed by ifindex, delete by name in one request, run_in_netns opening the netns's
netlink socket in the same setns thread."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from sriov.errors import DeviceNotFoundError
from sriov.netlink import Netlink
from tests.conftest import unique

pytestmark = pytest.mark.root


@pytest.fixture
def nl() -> Iterator[Netlink]:
    with Netlink() as handle:
        yield handle


@pytest.fixture
def pod_link(nl: Netlink, netns: str) -> Iterator[tuple[str, str]]:
    """(netns path, name) of one end of a veth pair inside a fresh netns; the host end is ours."""
    ns, host_end, pod_end = f"/var/run/netns/{netns}", unique(), unique()
    nl.create_veth(host_end, pod_end, b_netns=ns)
    try:
        yield ns, pod_end
    finally:
        nl.delete_if_exists(host_end)


def test_link_ops_by_ifindex(nl: Netlink, pod_link: tuple[str, str]) -> None:
    ns, name = pod_link
    info = nl.link(name, ns)
    assert info is not None
    new = unique()
    nl.rename(info.index, new, ns)
    nl.set_up(info.index, ns)
    nl.add_address(info.index, "192.0.2.7/24", ns)
    after = nl.link(new, ns)
    assert after is not None and after.index == info.index and after.up
    assert [a.cidr for a in nl.addresses(new, ns)] == ["192.0.2.7/24"]
    nl.set_down(info.index, ns)
    assert not nl.link(new, ns).up  # type: ignore[union-attr]


def test_set_up_by_altname_keeps_the_name(nl: Netlink, pod_link: tuple[str, str]) -> None:
    ns, name = pod_link
    nl.add_altname(name, "st-alt1", ns)
    nl.set_up("st-alt1", ns)
    info = nl.link(name, ns)
    assert info is not None and info.name == name and info.up


def test_delete_by_name_and_missing_links(nl: Netlink, pod_link: tuple[str, str]) -> None:
    ns, name = pod_link
    with pytest.raises(DeviceNotFoundError, match="st-nosuch"):
        nl.delete("st-nosuch", ns)
    assert nl.delete_if_exists("st-nosuch", ns) is False
    with pytest.raises(DeviceNotFoundError):
        nl.set_up("st-nosuch", ns)
    assert nl.delete_if_exists(name, ns) is True
    assert nl.link(name, ns) is None


def test_run_in_netns_runs_there_and_leaves_a_working_socket(
    nl: Netlink, pod_link: tuple[str, str]
) -> None:
    ns, name = pod_link
    inode = nl.run_in_netns(ns, lambda: os.stat("/proc/thread-self/ns/net").st_ino)
    assert inode == os.stat(ns).st_ino
    assert os.stat("/proc/thread-self/ns/net").st_ino != inode  # the caller never moved
    info = nl.link(name, ns)  # served by the socket that thread opened
    assert info is not None and info.name == name
    with pytest.raises(ZeroDivisionError):  # errors of fn reach the caller, socket or not
        nl.run_in_netns(ns, lambda: 1 // 0)
    nl.forget_netns(ns)
    with pytest.raises(ZeroDivisionError):
        nl.run_in_netns(ns, lambda: 1 // 0)
    assert nl.link(name, ns) is not None  # a failed fn left no half-registered socket behind
