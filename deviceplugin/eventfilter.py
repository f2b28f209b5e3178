"""Which kernel device events (udev/netlink, ``sriov.events``) warrant a rescan. Pure.

A busy node sees a stream of link events for pod veths; only events about PCI
devices and about the netdevs of our PFs/VFs matter. A carrier change of a known
netdev only needs a health recompute, unless the host is emulated (its tree
learns the carrier from the real veth during a full rescan's refresh).
"""

from __future__ import annotations

import enum

from sriov.events import DeviceEvent, EventKind
from sriov.types import Inventory


class Rescan(enum.StrEnum):
    FULL = "full"
    HEALTH = "health"


class EventFilter:
    def __init__(self, *, carrier_needs_refresh: bool = False) -> None:
        self._carrier_needs_refresh = carrier_needs_refresh
        self._inventory: Inventory | None = None
        self._known: frozenset[str] = frozenset()

    def _names(self, inventory: Inventory | None) -> frozenset[str]:
        if inventory is not self._inventory:
            self._inventory = inventory
            names: set[str] = set()
            if inventory is not None:
                for pf in inventory.pfs:
                    names.update(pf.netdevs)
                names.update(vf.netdev for vf in inventory.vfs if vf.netdev)
            self._known = frozenset(names)
        return self._known

    def action(self, event: DeviceEvent, inventory: Inventory | None) -> Rescan | None:
        if event.subsystem == "pci" or event.pci is not None:
            return Rescan.FULL
        if event.ifname is None or event.ifname not in self._names(inventory):
            return None
        if event.kind is EventKind.CARRIER and not self._carrier_needs_refresh:
            return Rescan.HEALTH
        return Rescan.FULL
