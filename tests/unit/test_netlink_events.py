"""Event stream merging, link tracking and uevent parsing (no root needed)."""

from __future__ import annotations

import threading

import pytest

from sriov.events import DeviceEvent, EventKind, EventStream, PipeEventSource, pci_from_devpath
from sriov.netlink_events import LinkTracker
from sriov.netlink_types import LinkInfo
from sriov.udev import event_from_uevent


def _link(index: int, name: str, carrier: bool, **kw: object) -> LinkInfo:
    base = dict(index=index, name=name, kind="veth", mac=None, mtu=1500, up=True, carrier=carrier,
                operstate="up" if carrier else "down", alias=None, altnames=(), master_index=None,
                link_index=None, netns_id=None, parent_bus=None, parent_dev=None)
    base.update(kw)
    return LinkInfo(**base)  # type: ignore[arg-type]


def test_tracker_reports_added_carrier_rename_and_removed() -> None:
    tracker = LinkTracker((_link(1, "lo", True),))
    assert tracker.new_link(_link(1, "lo", True)) is None  # known, nothing changed
    added = tracker.new_link(_link(5, "eth1", False, parent_bus="pci", parent_dev="0000:3b:02.1"))
    assert added is not None and (added.kind, added.pci, added.carrier) == (
        EventKind.ADDED,
        "0000:3b:02.1",
        False,
    )
    up = tracker.new_link(_link(5, "eth1", True))
    assert up is not None and (up.kind, up.carrier) == (EventKind.CARRIER, True)
    renamed = tracker.new_link(_link(5, "net1", True))
    assert renamed is not None and (renamed.kind, renamed.ifname) == (EventKind.CHANGED, "net1")
    removed = tracker.del_link(_link(5, "net1", True))
    assert (removed.kind, removed.ifindex) == (EventKind.REMOVED, 5)
    assert tracker.new_link(_link(5, "net1", True)).kind == EventKind.ADDED  # type: ignore[union-attr]


def test_uevent_of_a_vf_netdev_carries_its_pci_parent() -> None:
    event = event_from_uevent({
        "ACTION": "add", "SUBSYSTEM": "net", "INTERFACE": "ens1f0v3", "IFINDEX": "12",
        "DEVPATH": "/devices/pci0000:3a/0000:3a:00.0/0000:3b:02.3/net/ens1f0v3",
    })
    assert event == DeviceEvent(kind=EventKind.ADDED, subsystem="net", pci="0000:3b:02.3",
                                ifname="ens1f0v3", ifindex=12, source="udev")


def test_uevent_of_a_pci_bind_is_changed_with_driver() -> None:
    event = event_from_uevent({"ACTION": "bind", "SUBSYSTEM": "pci", "DRIVER": "vfio-pci",
                               "PCI_SLOT_NAME": "0000:3b:02.0", "DEVPATH": "/devices/x"})
    assert event is not None
    assert (event.kind, event.pci, event.driver, event.ifname) == (
        EventKind.CHANGED,
        "0000:3b:02.0",
        "vfio-pci",
        None,
    )


def test_uevents_of_other_subsystems_are_ignored() -> None:
    assert (
        event_from_uevent({"ACTION": "add", "SUBSYSTEM": "block", "DEVPATH": "/devices/x"}) is None
    )


@pytest.mark.parametrize(
    ("devpath", "pci"),
    [
        ("/devices/pci0000:00/0000:00:03.0/0000:01:00.1/net/eth1", "0000:01:00.1"),
        ("/devices/virtual/net/veth0", None),
    ],
)
def test_pci_from_devpath(devpath: str, pci: str | None) -> None:
    assert pci_from_devpath(devpath) == pci


def _ev(kind: EventKind, ifname: str) -> DeviceEvent:
    return DeviceEvent(kind=kind, subsystem="net", ifname=ifname)  # type: ignore[arg-type]


def test_stream_merges_sources_and_poll_times_out_empty() -> None:
    a, b = PipeEventSource(), PipeEventSource()
    with EventStream([a, b]) as stream:
        assert stream.poll(0) == []
        a.push(_ev(EventKind.ADDED, "x"))
        b.push(_ev(EventKind.REMOVED, "y"))
        b.push(_ev(EventKind.ADDED, "z"))
        got = stream.wait_for(lambda e: e.ifname == "z", timeout=5)
        got += stream.poll(0)
        assert sorted(e.ifname for e in got) == ["x", "y", "z"]


def test_stream_delivers_to_a_callback_thread_until_closed() -> None:
    source = PipeEventSource()
    received: list[DeviceEvent] = []
    done = threading.Event()

    def on_event(event: DeviceEvent) -> None:
        received.append(event)
        if event.ifname == "boom":
            raise RuntimeError("subscriber bug")  # must not kill the stream
        if len(received) == 2:
            done.set()

    stream = EventStream([source])
    stream.start(on_event)
    source.push(_ev(EventKind.ADDED, "boom"))
    source.push(_ev(EventKind.CARRIER, "ok"))
    assert done.wait(timeout=5)
    stream.close()
    assert [e.ifname for e in received] == ["boom", "ok"]
