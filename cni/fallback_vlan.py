"""On-demand 8021q sub-interfaces (``<master>.<vid>``) shared by fallback attachments.

Crash-safe reference counting: there is no counter. The users of a sub-interface are the
attachment records in the state store whose ``vlanParent`` names it; every decision is taken
under one ``flock`` (``<state>/fallback-vlan/lock``) and re-derived from those records; a
leaving attachment drops its claim from its record under that lock (:meth:`VlanParents.leave`),
so of two concurrent DELs the last one out deletes the sub-interface.
A marker file ``<state>/fallback-vlan/<name>`` says *we* created the sub-interface, so one an
administrator made is used but never deleted.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cni.errors import CniCode, CniError
from cni.record import DamagedRecord
from cni.state import StateStore, atomic_write
from sriov import validate
from sriov.errors import InvalidInputError
from sriov.types import IfName

log = logging.getLogger(__name__)
VLAN_DIR = "fallback-vlan"
RECORD_KEY = "vlanParent"


def vlan_ifname(master: str, vid: int) -> IfName:
    """``<master>.<vid>``; an error naming ``fallback.vlan`` when it exceeds 15 bytes."""
    try:
        return validate.ifname(f"{master}.{vid}")
    except InvalidInputError as e:
        raise CniError(CniCode.INVALID_CONFIG, f"invalid fallback.vlan {vid!r}: sub-interface name "
                       f"{master}.{vid!s} is not a valid interface name ({e.reason})") from None


class VlanParents:
    """Create/reuse/drop ``<master>.<vid>`` under the state-dir lock."""

    def __init__(self, state: StateStore, netlink: Any) -> None:
        self.state = state
        self.netlink = netlink
        self.dir = state.root / VLAN_DIR

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.dir / "lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # held for a few netlink requests at most
            yield
        finally:
            os.close(fd)

    def _marker(self, name: str) -> Path:
        return self.dir / name

    def ensure(self, master: str, vid: int) -> IfName:
        """Return the sub-interface name, creating it (up) if missing. Call under :meth:`locked`."""
        name = vlan_ifname(master, vid)
        existing = self.netlink.link(name)
        if existing is not None:
            if existing.kind != "vlan":
                raise CniError(
                    CniCode.INVALID_CONFIG,
                    f"invalid fallback.vlan {vid}: {name} exists "
                    f"but is a {existing.kind or 'physical'} link, not a VLAN",
                )
            if not existing.up:
                self.netlink.set_up(name)
            return name
        log.info("creating VLAN sub-interface %s on %s", name, master)
        # the marker first: a crash right after the creation must not leave a sub-interface that
        # looks like an administrator's (never deleted); a marker without a link is harmless
        atomic_write(self._marker(name), b"created by the sriov CNI fallback\n", fault=None)
        try:
            self.netlink.create_vlan(name, master, vid)
            self.netlink.set_up(name)
        except Exception:
            self.netlink.delete_if_exists(name)
            self._marker(name).unlink(missing_ok=True)
            raise
        return name

    def users(
        self, name: str, *, excluding: tuple[str, str] | None = None
    ) -> list[tuple[str, str]]:
        records, _damaged = self.state.list_attachments()
        return [r.key for r in records if r.fallback is not None
                and r.fallback.vlan_parent == name and r.key != excluding]

    def leave(self, key: tuple[str, str], name: str) -> None:
        """Drop attachment ``key``'s claim on ``name`` (its link is gone); under :meth:`locked`.

        The claim lives in the attachment record, which the plugin removes only after the mode's
        DEL returns, outside this lock: two DELs of the last two users would each still see the
        other's claim and both keep the sub-interface. Rewriting the record without the claim
        under the lock makes the last one out see nobody left."""
        try:
            record = self.state.load(*key)
        except DamagedRecord:
            return  # the plugin quarantines it; a damaged record claims nothing
        part = record.fallback if record is not None else None
        if record is not None and part is not None and part.vlan_parent == name:
            self.state.save(dataclasses.replace(
                record, fallback=dataclasses.replace(part, vlan_parent=None)))

    def release(self, name: str, *, excluding: tuple[str, str]) -> bool:
        """``excluding`` leaves; delete ``name`` if we created it and no other attachment uses
        it. Call under :meth:`locked`."""
        self.leave(excluding, name)
        if not self._marker(name).exists():
            return False
        others = self.users(name, excluding=excluding)
        if others:
            log.debug("VLAN sub-interface %s still used by %d attachment(s)", name, len(others))
            return False
        log.info("deleting unused VLAN sub-interface %s", name)
        self.netlink.delete_if_exists(name)
        self._marker(name).unlink(missing_ok=True)
        return True
