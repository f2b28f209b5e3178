"""The VF netdev side of the VF mode: snapshot, move into the pod, and exact restore to the host.

Everything goes through :class:`sriov.netlink.Netlink` (passed in). Renames always go through a
per-VF temporary name and first drop an altname equal to the target name: on kernel 6.x a name
that lingers as an altname makes the rename fail with EEXIST (sriov-cni #445).
"""

from __future__ import annotations

import array
import contextlib
import dataclasses
import errno
import fcntl
import logging
import secrets
import socket
import struct
import zlib
from collections.abc import Callable
from typing import Any

from sriov.errors import DeviceNotFoundError, NetlinkOpError
from sriov.netlink_types import LinkInfo

log = logging.getLogger(__name__)
TEMP_PREFIX = "sriovtmp"
SIOCETHTOOL = 0x8946
ETHTOOL_GPERMADDR = 0x20
MIN_MTU = 68
PermMacReader = Callable[[str], "str | None"]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class NetdevSnapshot:
    """The VF netdev as it was in the host netns before ADD."""

    name: str
    mac: str
    mtu: int
    altnames: tuple[str, ...] = ()
    up: bool = False
    perm_mac: str | None = None
    """The permanent address (``ip link``'s ``permaddr``); ``None``: the netdev has none."""

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "mac": self.mac, "mtu": self.mtu,
                "altnames": list(self.altnames), "up": self.up, "permMac": self.perm_mac}

    @classmethod
    def from_json(cls, raw: Any) -> NetdevSnapshot:
        if not isinstance(raw, dict):
            raise ValueError("netdev snapshot must be a JSON object")
        try:
            return cls(name=str(raw["name"]), mac=str(raw["mac"]), mtu=int(raw["mtu"]),
                       altnames=tuple(str(a) for a in raw.get("altnames") or ()),
                       up=bool(raw.get("up")),
                       perm_mac=str(raw["permMac"]) if raw.get("permMac") else None)
        except (KeyError, TypeError) as e:
            raise ValueError(f"netdev snapshot lacks or mistypes {e}") from None


def temp_name(pci: str) -> str:
    """A per-VF interface name used only while a VF netdev changes name or netns (<=15 chars)."""
    return f"{TEMP_PREFIX}{zlib.crc32(pci.encode()) & 0xFFFFFF:06x}"


def host_temp_name() -> str:
    """A unique temporary name for a VF on its way back into the shared host netns.

    Unlike :func:`temp_name` (used inside the pod's private netns, where DEL looks for it by
    name after a crash) it is random: the host netns is shared, and a name derived only from
    the PCI address could collide (EEXIST) with another host's VF — e.g. two emulated hosts on
    one machine. A VF left under it is found again by PCI address, not by name."""
    return f"{TEMP_PREFIX}{secrets.token_hex(4)[:7]}"


def read_perm_mac(name: str) -> str | None:
    """``name``'s permanent address (ETHTOOL_GPERMADDR in the caller's netns); ``None`` when it
    has none (all zero: veth, bridges) or cannot be read."""
    request = array.array("B", struct.pack("=II", ETHTOOL_GPERMADDR, 32) + bytes(32))
    ifreq = struct.pack("16sP", name.encode()[:15], request.buffer_info()[0]).ljust(40, b"\0")
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            fcntl.ioctl(sock.fileno(), SIOCETHTOOL, ifreq)
    except OSError as e:
        log.debug("no permanent address for %s: %s", name, e)
        return None
    size = struct.unpack_from("=I", request, 4)[0]
    raw = bytes(request[8:8 + min(size, 32)])
    if len(raw) != 6 or not any(raw):
        return None
    return ":".join(f"{b:02x}" for b in raw)


def snapshot(nl: Any, name: str, read_perm: PermMacReader = read_perm_mac) -> NetdevSnapshot:
    link = nl.link(name)
    if link is None:
        raise DeviceNotFoundError("VF netdev", name, "not in the host network namespace")
    return NetdevSnapshot(name=link.name, mac=link.mac or "", mtu=link.mtu,
                          altnames=tuple(link.altnames), up=link.up, perm_mac=read_perm(link.name))


def drop_altnames(
    nl: Any, name: str, netns: str | None, keep: tuple[str, ...] = ()
) -> tuple[str, ...]:
    """Remove every altname of ``name`` not in ``keep``; returns what was removed."""
    link = nl.link(name, netns)
    removed = []
    for alt in link.altnames if link else ():
        if alt in keep:
            continue
        try:
            nl.del_altname(name, alt, netns)
        except NetlinkOpError as e:
            if e.errno not in (errno.ENOENT, errno.ENODEV):
                raise
        removed.append(alt)
    return tuple(removed)


def rename(nl: Any, name: str, new: str, netns: str | None) -> None:
    """Rename ``name`` to ``new`` (down first; an altname equal to ``new`` is dropped first)."""
    if name == new:
        return
    link = nl.link(name, netns)
    if link is not None and new in link.altnames:
        nl.del_altname(name, new, netns)
    nl.set_down(name, netns)
    nl.rename(name, new, netns)


def find(nl: Any, netns: str | None, *names: str) -> str | None:
    """The first of ``names`` that exists in ``netns`` (a name or an altname)."""
    link = find_link(nl, netns, *names)
    return str(link.name) if link is not None else None


def find_link(nl: Any, netns: str | None, *names: str) -> LinkInfo | None:
    """The link of the first of ``names`` that exists in ``netns`` (a name or an altname)."""
    for name in names:
        link = nl.link(name, netns)
        if link is not None:
            return link
    return None


def restore_in_host(nl: Any, current: str, snap: NetdevSnapshot,
                    read_perm: PermMacReader = read_perm_mac) -> None:
    """Put a VF netdev that is back in the host netns exactly as ``snap``: name, MAC, MTU,
    permanent address, altnames, admin state. Each step is skipped when already so (after a
    move it is down already, and usually has its name back from the move itself)."""
    link = nl.link(current)
    if link is None:
        raise DeviceNotFoundError("VF netdev", current, "vanished while it was being restored")
    if link.up:
        nl.set_down(link.index)
    kept = set(link.altnames)
    for alt in link.altnames:
        if alt not in snap.altnames or alt == snap.name:
            with contextlib.suppress(NetlinkOpError):  # gone meanwhile
                nl.del_altname(link.name, alt)
            kept.discard(alt)
    if link.name != snap.name:
        nl.rename(link.index, snap.name)
    nl.set_link(link.index, mac=snap.mac if snap.mac and link.mac != snap.mac else None,
                mtu=snap.mtu if link.mtu != snap.mtu else None)
    refresh_perm_mac(nl, snap, read_perm)
    for alt in snap.altnames:
        if alt not in kept:
            with contextlib.suppress(NetlinkOpError):  # taken by another link meanwhile
                nl.add_altname(snap.name, alt)
    if snap.up:
        nl.set_up(link.index)
    log.info("VF netdev restored in the host as %s (mac %s, mtu %s)", snap.name, snap.mac, snap.mtu)


def refresh_perm_mac(nl: Any, snap: NetdevSnapshot,
                     read_perm: PermMacReader = read_perm_mac) -> bool:
    """Give the VF netdev ``snap.name`` its snapshotted permanent address back; True if it did.

    igbvf copies its current MAC into the permanent address at every VF reset, and a VF resets
    when it goes down: DEL sets it down in the pod, netns teardown closes it, both while it wears
    the pod's MAC. So once the host MAC is back, reset it once more. A down igbvf resets on an
    MTU change (``igbvf_change_mtu``); going down and up would also attach a qdisc, which
    ``ip link`` shows. Only done when the snapshot's permanent address was its MAC (what a reset
    gives back) and the netdev now reports another one; drivers with a fixed one never do.
    """
    if not snap.perm_mac or snap.perm_mac != snap.mac:
        return False
    now = read_perm(snap.name)
    if now is None or now == snap.perm_mac:
        return False
    bounce = snap.mtu - 1 if snap.mtu > MIN_MTU else snap.mtu + 1
    nl.set_mtu(snap.name, bounce)
    nl.set_mtu(snap.name, snap.mtu)
    after = read_perm(snap.name)
    if after != snap.perm_mac:
        log.warning("VF netdev %s: permanent address is %s after a reset, not %s", snap.name,
                    after, snap.perm_mac)
        return False
    log.info("VF netdev %s: permanent address %s restored (was %s) by a VF reset", snap.name,
             snap.perm_mac, now)
    return True


def restore_mac(nl: Any, snap: NetdevSnapshot, read_perm: PermMacReader = read_perm_mac) -> None:
    """Put the snapshotted MAC (and permanent address) back on the VF netdev if it is (still)
    in the host netns."""
    link = nl.link(snap.name)
    if link is None:
        return
    if snap.mac and link.mac != snap.mac:
        nl.set_mac(snap.name, snap.mac)
    refresh_perm_mac(nl, snap, read_perm)


def move_to_host(nl: Any, link: LinkInfo, netns: str, name: str) -> str:
    """Move VF netdev ``link`` out of ``netns`` into the host, as ``name`` when that is free;
    returns its name in the host. Altnames are dropped first (they could clash in the host).

    The move closes the netdev (no separate "down"). When ``name`` is taken in the host the
    kernel may have moved it under its pod name already; if it did not move at all it goes
    under a unique temporary name instead."""
    for alt in link.altnames:
        try:
            nl.del_altname(link.name, alt, netns)
        except NetlinkOpError as e:
            if e.errno not in (errno.ENOENT, errno.ENODEV):
                raise
    try:
        nl.move_to_netns(link.index, netns, None, new_name=name)
        return name
    except NetlinkOpError as e:
        if e.errno != errno.EEXIST:
            raise
    if nl.link(link.name, netns) is None:
        return str(link.name)  # moved; only the rename was refused (restore_in_host renames)
    temp = host_temp_name()
    nl.move_to_netns(link.index, netns, None, new_name=temp)
    return temp
