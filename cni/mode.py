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

import contextlib
import dataclasses
import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from cni.errors import CniCode, CniError
from cni.ipam import IpamRunner
from cni.netconf import NetConf
from cni.protocol import CmdArgs, Interface, Result
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
    defer: Callable[[Callable[[], None]], None] | None = None
    """DEL in the agent: hands the mode's slow tail (the VF's move home and restore) to run
    after the reply, still under this attachment's and its VF's locks; None: do it now."""


class Mode(Protocol):
    def add(self, ctx: AttachmentContext) -> Result:
        """Create the attachment, IPAM ADD included; on failure undo everything (IPAM too).

        For a device-backed attachment the plugin holds ``ctx.state.vf_lock(ctx.device_id)``."""

    def delete(self, ctx: AttachmentContext) -> None:
        """IPAM DEL first (a failure raises and the record stays, so a retry can finish), then
        undo ADD best-effort; succeed when things are already gone (netns gone/empty). With
        ``ctx.defer`` the mode may hand its remaining work to it instead of doing it now."""

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


def chained_result(ctx: AttachmentContext, interface: Interface, ipam: Result) -> Result:
    """A device mode's result: our interface and IPAM's IPs/routes appended to ``prevResult``
    (chains), the IPs pointing at our interface; DNS from IPAM, else the netconf, else prev."""
    prev = ctx.conf.prev_result or Result()
    index = len(prev.interfaces)
    ips = tuple(dataclasses.replace(ip, interface=index) for ip in ipam.ips)
    dns = ipam.dns if ipam.dns.to_dict() else (ctx.conf.dns if ctx.conf.dns.to_dict() else prev.dns)
    return Result(cni_version=ctx.conf.cni_version, interfaces=(*prev.interfaces, interface),
                  ips=(*prev.ips, *ips), routes=(*prev.routes, *ipam.routes), dns=dns)


def quietly(log: logging.Logger, what: str, fn: Callable[[], object]) -> Callable[[], None]:
    """An undo callback that logs its failure instead of masking the original error."""

    def run() -> None:
        try:
            fn()
        except Exception as e:
            log.error("rollback: %s failed: %s", what, e)

    return run


def ifname_exists(ifname: str, netns: str) -> CniError:
    """ADD found ``CNI_IFNAME`` already in the pod (code 107)."""
    return CniError(CniCode.ATTACHMENT_EXISTS, f"interface {ifname} already exists in {netns}",
                    "CNI ADD must not replace an existing interface")


def forget_netns(nl: Netlink, netns: str) -> None:
    """Drop the cached netlink socket of the pod netns (it would keep a deleted netns alive)."""
    if netns:
        with contextlib.suppress(Exception):
            nl.forget_netns(netns)


def defer_in_pod(ctx: AttachmentContext, record: AttachmentRecord | None, netns: str,
                 tail: Callable[[str], None]) -> bool:
    """A DEL's slow step in the pod netns, run after the reply (the agent's deferred DEL,
    docs/cni.md): ``tail`` gets a path to the pod netns that stays valid after the runtime
    deletes it (an fd of ours keeps the netns alive). The record is marked ``del_pending``
    first, so a crash before the tail is done is finished by whoever finds the record next.

    False (the caller runs its step now) when the plugin defers nothing (standalone, GC, agent
    start), the record is absent or incomplete, or the netns is already gone."""
    if ctx.defer is None or record is None or not record.complete:
        return False
    if not netns or not os.path.exists(netns):
        return False
    try:
        fd = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        ctx.state.save(dataclasses.replace(record, del_pending=True), durable=False)
    except BaseException:
        os.close(fd)
        raise

    def run() -> None:
        try:
            ctx.faults("deferred-del")
            tail(f"/proc/self/fd/{fd}")
        finally:
            os.close(fd)

    ctx.defer(run)
    return True


def require_owned_record(ctx: AttachmentContext, released: bool, what: str) -> AttachmentRecord:
    """CHECK's first test for a device mode: the record is complete, not released, and the
    device's owner record still names this attachment (code 3, else 108)."""
    record = ctx.record
    assert record is not None
    if not record.complete or released:
        raise CniError(CniCode.UNKNOWN_CONTAINER, f"attachment {ctx.args.container_id}/"
                       f"{ctx.args.ifname} is not complete on this node")
    assert record.device_id is not None
    owner = ctx.state.owner(record.device_id)
    if not owner or owner.key != (ctx.args.container_id, ctx.args.ifname):
        raise CniError(CniCode.ATTACHMENT_CHANGED, f"{what} {record.device_id} is no longer "
                       "owned by this attachment")
    return record
