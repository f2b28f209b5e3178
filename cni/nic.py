"""NIC mode: a whole PCI NIC without SR-IOV (virtio-net in a VM, a PF with ``sriov_numvfs=0``)
attached to a pod as the reference ``host-device`` plugin does, and restored exactly on DEL.

ADD: snapshot of the host netdev (name, MAC, MTU, permanent address, altnames, alias, admin
state) saved in the attachment record before anything changes; the netdev moved into the pod
netns and renamed to ``CNI_IFNAME`` in the same request (so its host name never appears in the
pod and cannot clash there; with altnames it goes under a per-device temporary name first, as
in the VF mode); MAC/MTU from the netconf, up, IPAM configured on it. Every step's undo is on
an :class:`contextlib.ExitStack`: a failure anywhere leaves the NIC, IPAM and state as before.

DEL: IPAM released, then the netdev brought home (moved out of the pod netns, or - the pod
netns was destroyed - found again by PCI address once the kernel has handed it back to the
host netns, possibly as ``dev<N>``) and restored exactly from the snapshot.

Unlike ``host-device`` the host name is kept in the record, not in the pod-side alias, so the
NIC's own alias survives. PF-side VF settings (vlan, spoofchk, trust, rates, link state) do not
exist for a NIC and are refused with code 7 before anything is touched.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import logging
import os
import time
from typing import Any

from cni import iface, vf_netdev
from cni.errors import CniCode, CniError
from cni.mode import (
    AttachmentContext,
    chained_result,
    forget_netns,
    ifname_exists,
    journal_of,
    quietly,
    release_ipam,
    require_netns,
    require_owned_record,
)
from cni.protocol import Interface, Result
from cni.record import AttachmentRecord, NicPart
from cni.vf_checks import check_interface
from sriov.errors import DeviceNotFoundError, NetlinkOpError, VfBusyError
from sriov.types import DeviceClass, VirtualFunction

log = logging.getLogger(__name__)
ADD_STEPS = ("snapshot", "move", "rename", "mac-mtu", "up", "ipam", "save-result")
"""Named ADD steps; ``ctx.faults`` is called with each one just before it runs."""
PF_SIDE_KEYS = ("vlan", "qos", "vlan_proto", "spoofchk", "trust", "link_state", "min_tx_rate",
                "max_tx_rate")
""":class:`sriov.types.VfSettings` fields that only a PF can apply to one of its VFs."""
NETNS_TEARDOWN_TIMEOUT = 10.0
"""How long DEL waits for the NIC to come home after its netns was deleted (cleanup_net)."""
POLL_INTERVAL = 0.05


def refuse_pf_side_settings(ctx: AttachmentContext) -> None:
    settings = ctx.conf.vf_settings()
    asked = [k for k in PF_SIDE_KEYS if getattr(settings, k) is not None]
    if asked:
        raise CniError(
            CniCode.INVALID_CONFIG,
            f"deviceID {ctx.device_id} is a NIC without SR-IOV: PF-side VF settings "
            f"({', '.join(asked)}) do not apply to it",
            "remove them from the netconf, or use a VF; mac and mtu are allowed")


def _resolve(ctx: AttachmentContext) -> VirtualFunction:
    if ctx.device_id is None:
        raise CniError(CniCode.INVALID_CONFIG, "deviceID is required for the NIC mode")
    nic = ctx.host().sysfs.device(ctx.device_id)
    if nic.device_class is not DeviceClass.NIC:
        raise DeviceNotFoundError("NIC", ctx.device_id, f"it is a {nic.device_class.value}")
    return nic


def nic_part(record: AttachmentRecord) -> NicPart:
    if record.nic is None:
        raise CniError(CniCode.STATE, f"attachment {record.container_id}/{record.ifname} has no "
                       "NIC snapshot in its record")
    return record.nic


class NicMode:
    """The whole NIC's netdev moved into the pod; IPAM configured on it."""

    mode = "nic"

    def add(self, ctx: AttachmentContext) -> Result:
        refuse_pf_side_settings(ctx)
        nic = _resolve(ctx)
        netns = require_netns(ctx.args.netns)
        nl = ctx.netlink()
        journal = journal_of(ctx)
        try:
            with contextlib.ExitStack() as undo:
                if _reclaim_if_stale(ctx, nic.address):
                    nic = _resolve(ctx)
                if not nic.netdev:
                    raise DeviceNotFoundError("NIC netdev", nic.address,
                                              "the NIC has no netdev in the host netns")
                ctx.faults("snapshot")
                snap = vf_netdev.snapshot(nl, nic.netdev, with_alias=True)
                journal.save(nic=NicPart(netdev=snap))
                undo.callback(quietly(log, "remove attachment record", journal.discard))
                pod_iface = _move_into_pod(ctx, nl, netns, snap, nic.address, undo)
                ctx.faults("ipam")
                ipam = ctx.ipam.add(ctx.conf, ctx.args)
                undo.callback(quietly(log, "IPAM DEL", lambda: ctx.ipam.delete(ctx.conf, ctx.args)))
                iface.configure(nl, netns, ctx.args.ifname, ipam)
                result = chained_result(ctx, pod_iface, ipam)
                ctx.faults("save-result")
                record = journal.stage(result=result)
                ctx.state.set_owner(nic.address, dataclasses.replace(record, complete=True))
                undo.callback(quietly(log, "clear NIC owner", lambda: ctx.state.clear_owner(
                    nic.address, ctx.args.container_id, ctx.args.ifname)))
                undo.pop_all()
                ctx.log.info("ADD nic: NIC %s (%s) attached as %s", nic.address, snap.name,
                             ctx.args.ifname)
                return result
        finally:
            forget_netns(nl, netns)

    def delete(self, ctx: AttachmentContext) -> None:
        """IPAM first; then the NIC home and restored (VF/NIC lock held by the plugin)."""
        release_ipam(ctx)
        record = ctx.record
        if record is None or record.device_id is None or record.nic is None:
            return  # crashed before the snapshot: nothing of the NIC was touched
        pci, args = record.device_id, ctx.args
        if record.nic.released:
            ctx.log.info("DEL: NIC %s was reclaimed by a later attachment; leaving it", pci)
            return
        owner = ctx.state.owner(pci)
        if owner and owner.key != (args.container_id, args.ifname):
            ctx.log.warning("DEL: NIC %s is now owned by %s/%s; not touching it", pci,
                            owner.container_id, owner.ifname)
            return
        restore_nic(ctx.netlink(), ctx.host(), record, args.netns)
        ctx.state.clear_owner(pci, args.container_id, args.ifname)

    def check(self, ctx: AttachmentContext) -> None:
        ctx.ipam.check(ctx.conf, ctx.args)
        assert ctx.record is not None
        record = require_owned_record(ctx, nic_part(ctx.record).released, "NIC")
        nl = ctx.netlink()
        try:
            check_interface(nl, ctx, record)
        finally:
            forget_netns(nl, ctx.args.netns)


def _move_into_pod(ctx: AttachmentContext, nl: Any, netns: str, snap: vf_netdev.NetdevSnapshot,
                   pci: str, undo: contextlib.ExitStack) -> Interface:
    """Into the pod as CNI_IFNAME (via a per-device temp name when it has altnames: one equal
    to CNI_IFNAME would make the rename fail), then MAC/MTU from the netconf and up."""
    ifname = ctx.args.ifname
    direct = not snap.altnames
    target = ifname if direct else vf_netdev.temp_name(pci)
    where = [snap.name]
    ctx.faults("move")
    if snap.up:  # a move closes the netdev
        undo.callback(quietly(log, "set NIC up", lambda: nl.set_up(snap.name)))
    # before the move: the kernel renames after moving, so a refused name can leave it in the
    # pod under its host name
    undo.callback(quietly(log, "move NIC back", lambda: _move_back(nl, netns, where[-1], snap)))
    try:
        nl.move_to_netns(snap.name, None, netns, new_name=target)
    except NetlinkOpError as e:
        if e.errno == errno.EEXIST:
            raise ifname_exists(ifname, netns) from None
        raise
    where.append(target)
    iface.write_notify_sysctls(nl, netns, target)
    ctx.faults("rename")
    if not direct:
        vf_netdev.drop_altnames(nl, target, netns)  # the restore adds them back in the host
        try:
            nl.rename(target, ifname, netns)
        except NetlinkOpError as e:
            if e.errno == errno.EEXIST:
                raise ifname_exists(ifname, netns) from None
            raise
        where.append(ifname)
    ctx.faults("mac-mtu")
    ctx.faults("up")
    nl.set_link(ifname, netns, mac=ctx.conf.mac or None, mtu=ctx.conf.mtu or None, up=True)
    link = nl.link(ifname, netns)
    if link is None:
        raise DeviceNotFoundError("NIC netdev", ifname, f"vanished from {netns}")
    return Interface(name=ifname, mac=link.mac or "", mtu=link.mtu, sandbox=netns, pci_id=pci)


def _move_back(nl: Any, netns: str, pod_name: str, snap: vf_netdev.NetdevSnapshot) -> None:
    """Rollback of the move: home and exactly as snapshotted (MAC/MTU may have been set)."""
    link = nl.link(pod_name, netns)
    if link is None:
        return
    current = vf_netdev.move_to_host(nl, link, netns, snap.name)
    vf_netdev.restore_in_host(nl, current, snap)


def restore_nic(nl: Any, host: Any, record: AttachmentRecord, netns: str) -> None:
    """The NIC netdev home and exactly as snapshotted; tolerates "already done"."""
    snap = nic_part(record).netdev
    try:
        current = _bring_home(nl, host, record, netns, snap)
    finally:
        forget_netns(nl, netns)
    if current is None:
        log.warning("NIC %s has no netdev in the host netns; left as is", record.device_id)
        return
    vf_netdev.restore_in_host(nl, current, snap)


def _bring_home(nl: Any, host: Any, record: AttachmentRecord, netns: str,
                snap: vf_netdev.NetdevSnapshot) -> str | None:
    """The NIC netdev's name in the host after moving it there if it is still in the pod; else
    found by PCI address (the kernel hands a physical netdev back to the host netns when its
    netns is destroyed, asynchronously, under its pod name or ``dev<N>``: polled for)."""
    assert record.device_id is not None
    if netns and os.path.exists(netns):
        in_pod = vf_netdev.find_link(nl, netns, record.ifname,
                                     vf_netdev.temp_name(record.device_id))
        if in_pod is not None:
            return vf_netdev.move_to_host(nl, in_pod, netns, snap.name)
    deadline = time.monotonic() + NETNS_TEARDOWN_TIMEOUT
    while True:
        try:
            current = host.sysfs.device(record.device_id).netdev
        except DeviceNotFoundError:
            log.warning("NIC %s no longer exists: nothing to bring home", record.device_id)
            return None  # DEL must still succeed and drop the record
        if current is not None:
            return str(current)
        if time.monotonic() >= deadline:
            return None
        time.sleep(POLL_INTERVAL)  # netns teardown is asynchronous in the kernel


def _reclaim_if_stale(ctx: AttachmentContext, pci: str) -> bool:
    """Refuse a NIC a live attachment owns; restore and take over one whose netns is gone (its
    record stays, marked ``released``, so its late DEL releases its IPAM and nothing else)."""
    owner = ctx.state.owner(pci)
    args = ctx.args
    if owner is None or owner.key == (args.container_id, args.ifname):
        return False
    if owner.netns and os.path.exists(owner.netns):
        raise VfBusyError(pci, f"in use by container {owner.container_id} interface "
                               f"{owner.ifname} (netns {owner.netns})", what="NIC")
    ctx.log.info("NIC %s: owner %s/%s is stale (netns %s gone); restoring and reclaiming it",
                 pci, owner.container_id, owner.ifname, owner.netns or "-")
    from cni import recovery

    stale = dataclasses.replace(args, container_id=owner.container_id, ifname=owner.ifname)
    record = recovery.load_or_quarantine(ctx.state, stale)
    if record is not None and record.device_id == pci and record.nic and not record.nic.released:
        restore_nic(ctx.netlink(), ctx.host(), record, owner.netns)
        if ctx.state.path_of(*record.key).exists():
            ctx.state.save(dataclasses.replace(
                record, nic=dataclasses.replace(record.nic, released=True)))
    ctx.state.clear_owner(pci, owner.container_id, owner.ifname)
    return True


__all__ = ["ADD_STEPS", "NicMode", "restore_nic"]
