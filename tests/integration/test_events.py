"""The real event sources: kernel uevents (pyudev, kernel source) and rtnetlink link events."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sriov.events import DeviceEvent, EventKind, EventStream
from sriov.netlink import Netlink
from sriov.netlink_events import LinkEventSource
from sriov.udev import UdevEventSource
from tests.conftest import unique

pytestmark = pytest.mark.root
DEADLINE = 5.0


@pytest.fixture
def nl() -> Iterator[Netlink]:
    with Netlink() as handle:
        yield handle


def _match(kind: EventKind, ifname: str, source: str, carrier: bool | None = None):
    def predicate(event: DeviceEvent) -> bool:
        return (event.kind == kind and event.ifname == ifname and event.source == source
                and (carrier is None or event.carrier == carrier))
    return predicate


def test_netlink_reports_added_carrier_and_removed(nl: Netlink) -> None:
    a, b = unique(), unique()
    with EventStream([LinkEventSource()]) as stream:
        nl.create_veth(a, b)
        try:
            seen = stream.wait_for(_match(EventKind.ADDED, b, "netlink"), DEADLINE)
            assert any(_match(EventKind.ADDED, b, "netlink")(e) for e in seen)
            nl.set_up(a)
            nl.set_up(b)
            seen = stream.wait_for(_match(EventKind.CARRIER, b, "netlink", carrier=True), DEADLINE)
            assert any(_match(EventKind.CARRIER, b, "netlink", carrier=True)(e) for e in seen)
            nl.set_down(a)
            seen = stream.wait_for(_match(EventKind.CARRIER, b, "netlink", carrier=False), DEADLINE)
            assert any(_match(EventKind.CARRIER, b, "netlink", carrier=False)(e) for e in seen)
        finally:
            nl.delete_if_exists(a)
        seen = stream.wait_for(_match(EventKind.REMOVED, b, "netlink"), DEADLINE)
        assert any(_match(EventKind.REMOVED, b, "netlink")(e) for e in seen)


def test_netlink_source_in_a_netns_sees_a_link_moved_in_and_out(nl: Netlink, netns: str) -> None:
    ns = f"/var/run/netns/{netns}"
    a, b = unique(), unique()
    with EventStream([LinkEventSource(netns=ns)]) as stream:
        nl.create_veth(a, b)
        try:
            nl.move_to_netns(b, None, ns, new_name="net1")
            # The kernel announces the link under its old name in the new netns, then the rename.
            seen = stream.wait_for(lambda e: e.ifname == "net1", DEADLINE)
            index = nl.index("net1", ns)
            assert [(e.kind, e.ifname) for e in seen if e.ifindex == index] == [
                (EventKind.ADDED, b), (EventKind.CHANGED, "net1")]
            assert all(e.ifname != a for e in seen)  # host links are not this namespace's business
            nl.move_to_netns("net1", ns, None, new_name=b)
            seen = stream.wait_for(_match(EventKind.REMOVED, "net1", "netlink"), DEADLINE)
            assert any(_match(EventKind.REMOVED, "net1", "netlink")(e) for e in seen)
        finally:
            nl.delete_if_exists(a)


def test_kernel_uevents_for_net_add_and_remove(nl: Netlink) -> None:
    a, b = unique(), unique()
    with EventStream([UdevEventSource()]) as stream:
        nl.create_veth(a, b)
        try:
            seen = stream.wait_for(_match(EventKind.ADDED, a, "udev"), DEADLINE)
            added = [e for e in seen if _match(EventKind.ADDED, a, "udev")(e)]
            assert added and added[0].subsystem == "net" and added[0].ifindex == nl.index(a)
        finally:
            nl.delete_if_exists(a)
        seen = stream.wait_for(_match(EventKind.REMOVED, b, "udev"), DEADLINE)
        assert any(_match(EventKind.REMOVED, b, "udev")(e) for e in seen)


def test_default_stream_merges_both_sources(nl: Netlink) -> None:
    a, b = unique(), unique()
    with EventStream() as stream:
        nl.create_veth(a, b)
        nl.delete_if_exists(a)
        sources: set[str] = set()

        def both_reported(event: DeviceEvent) -> bool:
            if event.ifname == a and event.kind == EventKind.REMOVED:
                sources.add(event.source)
            return sources == {"udev", "netlink"}

        stream.wait_for(both_reported, DEADLINE)
        assert sources == {"udev", "netlink"}
