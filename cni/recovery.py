"""What DEL, GC and a late ADD decide from the state store before any mode runs.

- which netns DEL may act in: the attachment's own (by nsfs identity), never a different
  ``CNI_NETNS`` (:func:`trusted_netns`);
- a damaged record is quarantined and the attachment found again: the VF from the copy of the
  record its owner record holds, a fallback link from the pod netns (:func:`load_or_recover`);
- an ADD that started before the last DEL of its attachment finished fails
  (:func:`refuse_late_add`, the DEL's tombstone).

See docs/reliability.md "Threats and guarantees".
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cni.errors import CniCode, CniError
from cni.netconf import NetConf
from cni.protocol import CmdArgs, Command
from cni.record import AttachmentMode, AttachmentRecord, DamagedRecord, FallbackPart, NetnsId
from cni.state import StateStore

log = logging.getLogger(__name__)
FALLBACK_KINDS = ("macvlan", "ipvlan")


def trusted_netns(given: str, record: AttachmentRecord) -> str:
    """The netns DEL acts in: the recorded one, identified by (st_dev, st_ino).

    ``CNI_NETNS`` is used only when it *is* the recorded namespace. A different one (a reused
    ``/proc/<pid>/ns/net``, the host's) is ignored with a warning; when the recorded netns is
    gone too, DEL acts as for a deleted pod ("": nothing in a netns is touched). Version-1
    records carry no identity: their path is compared, and trusted when it still exists.
    """
    recorded, identity = record.netns, record.netns_id
    if identity is None:
        if not given or given == recorded:
            return recorded
        if NetnsId.of(given) is not None and NetnsId.of(given) == NetnsId.of(recorded):
            return given
        if recorded and os.path.exists(recorded):
            log.warning("DEL: CNI_NETNS %s is not the attachment's netns %s; using the record's",
                        given, recorded)
            return recorded
        return given  # a version-1 record whose netns path is gone: as before the upgrade
    if given and NetnsId.of(given) == identity:
        return given
    if NetnsId.of(recorded) == identity:
        if given:
            log.warning("DEL: CNI_NETNS %s is not the attachment's netns %s; using the record's",
                        given, recorded)
        return recorded
    if given:
        log.warning("DEL: CNI_NETNS %s is not the attachment's netns (%s, gone); "
                    "treating the pod netns as deleted", given, recorded)
    return ""


def refuse_late_add(state: StateStore, args: CmdArgs, started: int) -> None:
    """Fail an ADD that started before the last DEL of the same attachment finished.

    The runtime gave up on that ADD (timeout) and deleted the attachment; completing it would
    leave a VF, record, owner and lease nobody deletes. ``started`` is an upper bound of the
    request's start (CLOCK_BOOTTIME ns), so a fresh ADD after a DEL is never refused.
    """
    deleted = state.tombstone(args.container_id, args.ifname)
    if deleted is not None and started <= deleted:
        raise CniError(CniCode.TRY_AGAIN_LATER,
                       f"attachment {args.container_id}/{args.ifname} was deleted while this ADD "
                       "was queued", "the runtime already sent DEL for it; nothing was attached")


def tombstone_quietly(state: StateStore, args: CmdArgs) -> None:
    try:
        state.write_tombstone(args.container_id, args.ifname)
    except CniError as e:  # the cleanup itself succeeded: never fail a DEL for its marker
        log.error("DEL: cannot record the deletion (a late ADD may then succeed): %s", e)
    state.prune_tombstones_if_due()  # bounded without a CNI GC (kubelet sends none)


def load_or_quarantine(state: StateStore, args: CmdArgs) -> AttachmentRecord | None:
    """The record; a damaged one is moved aside and replaced by its owner record's copy."""
    try:
        return state.load(args.container_id, args.ifname)
    except DamagedRecord as e:
        state.quarantine(state.path_of(args.container_id, args.ifname), str(e))
    return owner_copy(state, args.container_id, args.ifname)


def owner_copy(state: StateStore, container_id: str, ifname: str) -> AttachmentRecord | None:
    """The copy of the attachment's record kept with the owner record of the VF it holds."""
    for bdf, owner in state.owners():
        if owner.key == (container_id, ifname):
            copy = state.owner_record(bdf)
            if copy is not None and copy.key == (container_id, ifname):
                log.warning("attachment %s/%s recovered from the owner record of VF %s",
                            container_id, ifname, bdf)
                return copy
    return None


def load_or_recover(state: StateStore, args: CmdArgs, conf: NetConf,
                    netlink: Callable[[], Any]) -> AttachmentRecord | None:
    """DEL's record: stored, or recovered after its damage (never silently dropped)."""
    try:
        record = state.load(args.container_id, args.ifname)
        if record is not None:
            return record
        damaged = state.was_quarantined(args.container_id, args.ifname)  # by a GC, say
    except DamagedRecord as e:
        state.quarantine(state.path_of(args.container_id, args.ifname), str(e))
        damaged = True
    record = owner_copy(state, args.container_id, args.ifname)
    if record is not None or not damaged:
        return record
    return _fallback_from_pod(args, conf, netlink)


def _fallback_from_pod(args: CmdArgs, conf: NetConf,
                       netlink: Callable[[], Any]) -> AttachmentRecord | None:
    """A fallback attachment whose record was damaged: its link is ``CNI_IFNAME`` in the pod."""
    if conf.fallback is None or not args.netns or not os.path.exists(args.netns):
        log.error("DEL: damaged record of %s/%s and no VF owner names it; only IPAM is released",
                  args.container_id, args.ifname)
        return None
    try:
        link = netlink().link(args.ifname, args.netns)
    except Exception as e:  # recovery is best effort; IPAM is still released
        log.error("DEL: cannot look for %s in %s: %s", args.ifname, args.netns, e)
        return None
    if link is None or link.kind not in FALLBACK_KINDS:
        return None
    log.warning("DEL: damaged record; found fallback %s %s in %s", link.kind, args.ifname,
                args.netns)
    return AttachmentRecord(mode=AttachmentMode.FALLBACK, container_id=args.container_id,
                            ifname=args.ifname, network=conf.name, netns=args.netns,
                            netns_id=NetnsId.of(args.netns), fallback=FallbackPart())


def gc_candidates(state: StateStore, conf: NetConf,
                  netlink: Callable[[], Any]) -> list[tuple[AttachmentRecord, bool]]:
    """(record, recovered) of every attachment of the network; damaged records quarantined.

    A damaged record's attachment comes back from its VF owner record, or - a fallback one,
    when the damaged JSON still names its attachment, network and netns - from the pod
    (recovered=True). A record too broken for either waits for the runtime's DEL.
    """
    network = conf.name
    records, damaged = state.list_attachments()
    out = [(r, False) for r in records if r.network == network]
    for path, reason in damaged:
        salvaged = _salvage(path)
        state.quarantine(path, reason)
        if salvaged is None or salvaged[2] != network:
            continue
        cid, ifname, _network, netns = salvaged
        if owner_copy(state, cid, ifname) is not None:
            continue  # found below, with the VF's exact snapshot
        args = CmdArgs(command=Command.DEL, container_id=cid, ifname=ifname, netns=netns)
        found = _fallback_from_pod(args, conf, netlink)
        if found is not None:
            out.append((found, True))
    stored = {r.key for r in records}
    for bdf, owner in state.owners():
        key = owner.key
        if key in stored:
            continue
        copy = state.owner_record(bdf)
        if copy is not None and copy.key == key and copy.network == network:
            out.append((copy, True))
    return out


def _salvage(path: Path) -> tuple[str, str, str, str] | None:
    """(containerID, ifname, network, netns) of a damaged record whose JSON still parses."""
    try:
        raw = json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(raw, dict):
        return None
    fields = tuple(raw.get(k) for k in ("containerID", "ifname", "network", "netns"))
    if not all(isinstance(f, str) and f for f in fields[:3]) or not isinstance(fields[3], str):
        return None
    if path.name != f"{fields[0]}-{fields[1]}":
        return None
    return fields  # type: ignore[return-value]


def still_owned(state: StateStore, record: AttachmentRecord) -> bool:
    """A recovered attachment is still to be cleaned: its owner record (VF) or its link in
    the pod (fallback) is still there."""
    if record.device_id is None:
        return record.mode is AttachmentMode.FALLBACK
    owner = state.owner(record.device_id)
    return owner is not None and owner.key == record.key
