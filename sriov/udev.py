"""Kernel uevents for subsystems ``pci`` and ``net``: the only module importing pyudev.

Listens on the *kernel* netlink source (``source="kernel"``) because hosts and
containers often run no udevd. Events are read from the uevent properties
(``ACTION``, ``DEVPATH``, ``INTERFACE``, ``IFINDEX``, ``PCI_SLOT_NAME``,
``DRIVER``), which also exist for ``remove`` when sysfs is already gone.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import pyudev

from sriov.events import DeviceEvent, EventKind, pci_from_devpath
from sriov.types import IfName, PciAddress
from sriov.validate import is_pci_address

log = logging.getLogger(__name__)

SUBSYSTEMS = ("pci", "net")
_KINDS = {"add": EventKind.ADDED, "remove": EventKind.REMOVED}


def event_from_uevent(props: Mapping[str, str]) -> DeviceEvent | None:
    """Pure: a uevent's properties -> :class:`DeviceEvent` (``None`` for other subsystems)."""
    subsystem = props.get("SUBSYSTEM")
    if subsystem not in SUBSYSTEMS:
        return None
    kind = _KINDS.get(props.get("ACTION", ""), EventKind.CHANGED)
    devpath = props.get("DEVPATH", "")
    slot = props.get("PCI_SLOT_NAME", "")
    pci = PciAddress(slot) if is_pci_address(slot) else pci_from_devpath(devpath)
    ifindex = props.get("IFINDEX", "")
    ifname = props.get("INTERFACE") if subsystem == "net" else None
    return DeviceEvent(
        kind=kind,
        subsystem=subsystem,
        pci=pci,
        ifname=IfName(ifname) if ifname else None,
        ifindex=int(ifindex) if ifindex.isdigit() else None,
        driver=props.get("DRIVER") or None,
        source="udev",
    )


class UdevEventSource:
    """:class:`sriov.events.EventSource` over a pyudev kernel-uevent monitor."""

    def __init__(self, context: pyudev.Context | None = None) -> None:
        self._monitor = pyudev.Monitor.from_netlink(context or pyudev.Context(), source="kernel")
        for subsystem in SUBSYSTEMS:
            self._monitor.filter_by(subsystem)
        self._monitor.start()

    def fileno(self) -> int:
        return self._monitor.fileno()

    def read_events(self) -> list[DeviceEvent]:
        events: list[DeviceEvent] = []
        while (device := self._monitor.poll(timeout=0)) is not None:
            event = event_from_uevent(dict(device.properties))
            if event is not None:
                events.append(event)
        return events

    def close(self) -> None:
        # pyudev 0.24 has no Monitor.stop(); dropping the last reference unrefs the
        # libudev monitor, which closes its socket.
        self._monitor = None
