"""A cheap fingerprint of the host's device structure, so the safety timer can skip
a full rescan (every VF's sysfs attributes) when nothing structural changed.

It covers what a missed udev/netlink event could hide: PCI devices appearing or
vanishing (``sriov_numvfs``, hot-plug), driver rebinds (each device's ``driver``
link) and netdevs appearing, vanishing or being renamed in the host netns; SFs on
the auxiliary bus and vDPA devices appearing, vanishing or rebinding. One ``listdir``
plus one ``readlink`` per device: ~4 k syscalls at 4,096 VFs instead of ~40 k file
reads.
"""

from __future__ import annotations

import os
from pathlib import Path

Fingerprint = tuple[tuple[str, ...], ...]


class SysfsFingerprint:
    def __init__(self, root: Path) -> None:
        self._devices = os.path.join(root, "sys", "bus", "pci", "devices")
        self._net = os.path.join(root, "sys", "class", "net")
        self._buses = tuple(os.path.join(root, "sys", "bus", bus, "devices")
                            for bus in ("auxiliary", "vdpa"))

    def __call__(self) -> Fingerprint:
        devices = tuple(sorted(_listdir(self._devices)))
        drivers = tuple(_readlink(os.path.join(self._devices, d, "driver")) for d in devices)
        others: list[str] = []
        for bus in self._buses:  # SFs and vDPA devices: few, so names plus drivers
            others.extend(f"{name}={_readlink(os.path.join(bus, name, 'driver'))}"
                          for name in sorted(_listdir(bus)))
        return devices, drivers, tuple(sorted(_listdir(self._net))), tuple(others)


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []


def _readlink(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return ""
