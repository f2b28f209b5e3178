"""The contract between the plugin and an attachment mode (VF, DPDK, fallback).

The plugin (:mod:`cni.plugin`) picks the mode, holds the per-VF lock around a whole verb and
keeps the attachment record store; a mode owns everything of its attachment: the device or
link, its addresses and routes (:mod:`cni.iface`) and its IPAM, ADD and rollback as well as
DEL and CHECK. See docs/cni.md "Writing a mode".

Typed on both sides: the handles a mode gets are the real :class:`sriov.netlink.Netlink` and
:class:`sriov.host.Host` (imported for type checking only, so importing this module never loads
pyroute2).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from cni.errors import CniCode, CniError
from cni.ipam import IpamRunner
from cni.netconf import NetConf
from cni.protocol import CmdArgs, Result
from cni.record import AttachmentRecord, Journal
from cni.state import StateStore
from sriov.types import PciAddress

if TYPE_CHECKING:
    from sriov.host import Host
    from sriov.netlink import Netlink


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class AttachmentContext:
    """Everything a mode needs for one attachment. ``netlink()``/``host()`` are lazy getters."""

    args: CmdArgs
    conf: NetConf
    state: StateStore
    ipam: IpamRunner
    """The attachment's IPAM delegate; only the mode calls it (ADD, rollback, DEL, CHECK)."""
    netlink: Callable[[], Netlink]
    """Returns the (warm, shared per thread) netlink handle; opened on first call."""
    host: Callable[[], Host]
    """Returns the host (sysfs reader + VF admin) for this node."""
    log: logging.LoggerAdapter[logging.Logger]
    device_id: PciAddress | None = None
    """The VF of this attachment (from the netconf or pod-resources); None for fallback."""
    record: AttachmentRecord | None = None
    """DEL/CHECK/GC: the stored record (``args.netns`` is the netns DEL may act in: the
    record's own, :func:`cni.recovery.trusted_netns`)."""
    journal: Journal | None = None
    """ADD: the one writer of this attachment's record (:class:`cni.record.Journal`); the mode
    stages its part and saves the provisional record through it before its first change."""
    faults: Callable[[str], None] = lambda step: None
    """Fault-injection seam: modes call ``faults("<step>")`` before each ADD step (tests raise)."""


class Mode(Protocol):
    def add(self, ctx: AttachmentContext) -> Result:
        """Create the attachment, IPAM ADD included; on failure undo everything (IPAM too).

        For a device-backed attachment the plugin holds ``ctx.state.vf_lock(ctx.device_id)``."""

    def delete(self, ctx: AttachmentContext) -> None:
        """IPAM DEL first (a failure raises and the record stays, so a retry can finish), then
        undo ADD best-effort; succeed when things are already gone (netns gone/empty)."""

    def check(self, ctx: AttachmentContext) -> None:
        """IPAM CHECK, then verify the attachment against ``ctx.conf.prev_result``."""


def journal_of(ctx: AttachmentContext) -> Journal:
    """The ADD's record writer (the plugin always gives one to ``Mode.add``)."""
    if ctx.journal is None:
        raise CniError(CniCode.INTERNAL, "ADD without an attachment record journal")
    return ctx.journal


def release_ipam(ctx: AttachmentContext) -> None:
    """IPAM DEL of this attachment (every mode's first DEL step)."""
    ctx.ipam.delete(ctx.conf, ctx.args)


def require_netns(netns: str) -> str:
    """``CNI_NETNS`` as given, after checking it exists (ADD and CHECK need a live pod netns)."""
    if not netns or not os.path.exists(netns):
        raise CniError(CniCode.INVALID_NETNS, f"CNI_NETNS {netns!r} does not exist")
    return netns
