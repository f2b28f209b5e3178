"""rtnetlink link events (RTMGRP_LINK) as :class:`sriov.events.DeviceEvent`.

RTM_NEWLINK for an unseen ifindex is ``added``; for a known one whose carrier
flipped it is ``carrier``; a rename is ``changed``; RTM_DELLINK is ``removed``
(also what a move to another netns looks like from the source namespace).
The link table is seeded with one dump at start so existing links are not
reported as new.
"""

from __future__ import annotations

import logging
import socket
from typing import Any

from pyroute2.netlink.rtnl import RTM_DELLINK, RTM_NEWLINK, RTMGRP_LINK
from pyroute2.netlink.rtnl.marshal import MarshalRtnl

from sriov.events import DeviceEvent, EventKind
from sriov.netlink import Netlink
from sriov.netlink_msg import parse_link
from sriov.netlink_ns import netlink_socket_in
from sriov.netlink_types import LinkInfo
from sriov.types import IfName, PciAddress
from sriov.validate import is_pci_address

log = logging.getLogger(__name__)


class LinkTracker:
    """Pure: turns successive link snapshots into events."""

    def __init__(self, initial: tuple[LinkInfo, ...] = ()) -> None:
        self._known: dict[int, LinkInfo] = {link.index: link for link in initial}

    def new_link(self, link: LinkInfo) -> DeviceEvent | None:
        before = self._known.get(link.index)
        self._known[link.index] = link
        if before is None:
            return _event(EventKind.ADDED, link)
        if before.carrier != link.carrier:
            return _event(EventKind.CARRIER, link)
        if before.name != link.name:
            return _event(EventKind.CHANGED, link)
        return None

    def del_link(self, link: LinkInfo) -> DeviceEvent:
        self._known.pop(link.index, None)
        return _event(EventKind.REMOVED, link)


def _event(kind: EventKind, link: LinkInfo) -> DeviceEvent:
    pci = link.parent_dev if link.parent_bus == "pci" and is_pci_address(link.parent_dev) else None
    return DeviceEvent(
        kind=kind,
        subsystem="net",
        pci=PciAddress(pci) if pci else None,
        ifname=IfName(link.name),
        ifindex=link.index,
        carrier=link.carrier,
        source="netlink",
    )


class LinkEventSource:
    """:class:`sriov.events.EventSource` over an RTMGRP_LINK subscription in one netns."""

    def __init__(self, netns: str | None = None, netlink: Netlink | None = None) -> None:
        self._sock = netlink_socket_in(netns) if netns else socket.socket(
            socket.AF_NETLINK, socket.SOCK_DGRAM, 0)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self._sock.bind((0, RTMGRP_LINK))
        self._sock.setblocking(False)
        self._marshal = MarshalRtnl()
        # Subscribe first, then seed: a link created in between is reported at worst twice.
        owned = netlink is None
        nl = netlink or Netlink()
        try:
            self._tracker = LinkTracker(nl.links(netns))
        finally:
            if owned:
                nl.close()

    def fileno(self) -> int:
        return self._sock.fileno()

    def read_events(self) -> list[DeviceEvent]:
        events: list[DeviceEvent] = []
        while True:
            try:
                data = self._sock.recv(1 << 16)
            except BlockingIOError:
                return events
            except OSError as e:
                # ENOBUFS: the kernel dropped events; the next ones still come.
                log.warning("netlink link monitor lost events: %s", e)
                return events
            for msg in self._marshal.parse(data):
                event = self._to_event(msg)
                if event is not None:
                    events.append(event)

    def _to_event(self, msg: Any) -> DeviceEvent | None:
        msg_type = msg["header"]["type"]
        if msg_type not in (RTM_NEWLINK, RTM_DELLINK) or msg.get_attr("IFLA_IFNAME") is None:
            return None
        link = parse_link(msg)
        if msg_type == RTM_DELLINK:
            return self._tracker.del_link(link)
        return self._tracker.new_link(link)

    def close(self) -> None:
        self._sock.close()
