"""Inotify watches on the sysfs paths a rescan depends on; any event triggers a rescan.

On an emulated tree (``sriovctl emulate``) every change is a file or symlink
write, so these watches see PF carrier flips, ``sriov_numvfs`` changes, VFs
appearing/vanishing and driver rebinds. Real sysfs emits no inotify events for
attribute changes; there udev/netlink events (``sriov.events``) and the safety
timer drive rescans instead, and these watches are harmless.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from deviceplugin.dirwatch import InotifyEvent, Mask, Watcher
from sriov.types import Inventory

log = logging.getLogger(__name__)

_DIR_MASK = Mask.dir_changes() | Mask.MODIFY | Mask.ONLYDIR


_HEALTH_FILES = frozenset({"carrier", "operstate", "dormant", "carrier_changes"})


class SysfsWatch:
    """``on_change(health_only)``: True when only link state files changed."""

    def __init__(self, root: Path, on_change: Callable[..., None]) -> None:
        self._sys = root / "sys"
        self._on_change = on_change
        self._watcher = Watcher(self._on_events, name="dp-sysfswatch")
        self._watched: set[str] = set()
        self._refreshed_for: Inventory | None = None

    def start(self, inventory: Inventory | None) -> None:
        self.refresh(inventory)
        self._watcher.start()

    def stop(self) -> None:
        self._watcher.stop()

    def refresh(self, inventory: Inventory | None) -> None:
        """(Re)add watches for the bus, the drivers and every PF's dir and netdev.

        A no-op for the inventory already watched (health-only changes keep it).
        """
        if inventory is not None and inventory is self._refreshed_for and self._watched:
            return
        self._refreshed_for = inventory
        paths = [self._sys / "bus/pci/devices", self._sys / "bus/pci/drivers",
                 self._sys / "class/net"]
        drivers = self._sys / "bus/pci/drivers"
        if drivers.is_dir():
            paths.extend(drivers.iterdir())
        if inventory is not None:
            for pf in inventory.pfs:
                paths.append(self._sys / "bus/pci/devices" / pf.address)
                paths.extend(self._sys / "class/net" / n for n in pf.netdevs)
        for path in paths:
            real = os.path.realpath(path)
            if real in self._watched:
                continue
            if self._watcher.watch(Path(real), _DIR_MASK) is not None:
                self._watched.add(real)

    def _on_events(self, events: Iterable[InotifyEvent]) -> None:
        real = [e for e in events if not e.mask & Mask.IGNORED]
        if real:
            self._on_change(health_only=all(e.name in _HEALTH_FILES for e in real))
        if any(e.mask & Mask.IGNORED for e in events):
            self._watched.clear()  # a watched dir vanished; refresh re-adds what exists
