"""Tiny tolerant sysfs readers shared by the device-class modules.

Absent or unreadable means "this device does not have it": discovery of an optional
class attribute never fails a device (the core reader in :mod:`sriov.sysfs` decides
what is fatal). Standard library only.
"""

from __future__ import annotations

import os


def read(path: str) -> str | None:
    """A small attribute's stripped text, ``None`` when it cannot be read."""
    try:
        with open(path, "rb") as f:
            return f.read(4096).decode("ascii", "replace").strip()
    except OSError:
        return None


def entries(path: str) -> list[str]:
    """Sorted names in a directory, empty when it does not exist or cannot be listed."""
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


def link_name(path: str) -> str | None:
    """Basename of a symlink's target, ``None`` when there is no such link."""
    try:
        return os.path.basename(os.readlink(path))
    except OSError:
        return None
