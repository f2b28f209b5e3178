"""The VF netdev side of the VF mode: snapshot, move into the pod, and exact restore to the host.

Everything goes through :class:`sriov.netlink.Netlink` (passed in). Renames always go through a
per-VF temporary name and first drop an altname equal to the target name: on kernel 6.x a name
that lingers as an altname makes the rename fail with EEXIST (sriov-cni #445).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import logging
import zlib
from typing import Any

from sriov.errors import DeviceNotFoundError, NetlinkOpError

log = logging.getLogger(__name__)
TEMP_PREFIX = "sriovtmp"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class NetdevSnapshot:
    """The VF netdev as it was in the host netns before ADD."""

    name: str
    mac: str
    mtu: int
    altnames: tuple[str, ...] = ()
    up: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "mac": self.mac, "mtu": self.mtu,
                "altnames": list(self.altnames), "up": self.up}

    @classmethod
    def from_json(cls, raw: Any) -> NetdevSnapshot:
        if not isinstance(raw, dict):
            raise ValueError("netdev snapshot must be a JSON object")
        try:
            return cls(name=str(raw["name"]), mac=str(raw["mac"]), mtu=int(raw["mtu"]),
                       altnames=tuple(str(a) for a in raw.get("altnames") or ()),
                       up=bool(raw.get("up")))
        except (KeyError, TypeError) as e:
            raise ValueError(f"netdev snapshot lacks or mistypes {e}") from None


def temp_name(pci: str) -> str:
    """A per-VF interface name used only while a VF netdev changes name or netns (<=15 chars)."""
    return f"{TEMP_PREFIX}{zlib.crc32(pci.encode()) & 0xFFFFFF:06x}"


def snapshot(nl: Any, name: str) -> NetdevSnapshot:
    link = nl.link(name)
    if link is None:
        raise DeviceNotFoundError("VF netdev", name, "not in the host network namespace")
    return NetdevSnapshot(name=link.name, mac=link.mac or "", mtu=link.mtu,
                          altnames=tuple(link.altnames), up=link.up)


def drop_altnames(nl: Any, name: str, netns: str | None, keep: tuple[str, ...] = ()) -> tuple[str, ...]:
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
    for name in names:
        link = nl.link(name, netns)
        if link is not None:
            return str(link.name)
    return None


def restore_in_host(nl: Any, current: str, snap: NetdevSnapshot) -> None:
    """Put a VF netdev that is back in the host netns exactly as ``snap``: name, MAC, MTU,
    altnames, admin state. Each step is skipped when already so."""
    nl.set_down(current)
    drop_altnames(nl, current, None, keep=snap.altnames)
    rename(nl, current, snap.name, None)
    link = nl.link(snap.name)
    if link is None:
        raise DeviceNotFoundError("VF netdev", snap.name, "vanished while it was being restored")
    if snap.mac and link.mac != snap.mac:
        nl.set_mac(snap.name, snap.mac)
    if link.mtu != snap.mtu:
        nl.set_mtu(snap.name, snap.mtu)
    for alt in snap.altnames:
        if alt not in link.altnames:
            with contextlib.suppress(NetlinkOpError):  # taken by another link meanwhile
                nl.add_altname(snap.name, alt)
    if snap.up:
        nl.set_up(snap.name)
    log.info("VF netdev restored in the host as %s (mac %s, mtu %s)", snap.name, snap.mac, snap.mtu)


def restore_mac(nl: Any, snap: NetdevSnapshot) -> None:
    """Put the snapshotted MAC back on the VF netdev if it is (still) in the host netns."""
    link = nl.link(snap.name)
    if link is not None and snap.mac and link.mac != snap.mac:
        nl.set_mac(snap.name, snap.mac)


def move_to_host(nl: Any, name: str, netns: str, temp: str) -> str:
    """Move ``name`` out of ``netns`` into the host under ``temp``; returns the host name."""
    nl.set_down(name, netns)
    drop_altnames(nl, name, netns)
    nl.move_to_netns(name, netns, None, new_name=temp)
    return temp


def set_sysctls(nl: Any, netns: str, ifname: str) -> None:
    """``arp_notify``/``ndisc_notify`` = 1 on the pod interface, as sriov-cni does (best effort)."""
    def write() -> None:
        for path in (f"/proc/sys/net/ipv4/conf/{ifname}/arp_notify",
                     f"/proc/sys/net/ipv6/conf/{ifname}/ndisc_notify"):
            try:
                with open(path, "w", encoding="ascii") as f:
                    f.write("1")
            except OSError as e:
                log.debug("cannot set %s: %s", path, e)

    nl.run_in_netns(netns, write)
