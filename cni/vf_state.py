"""Exact restore of a VF from its attachment record, and reclaiming a stale owner.

The record (:class:`cni.record.AttachmentRecord`, its :class:`cni.record.VfPart` saved before
anything is changed, then completed with the result) holds both snapshots: PF-side
:class:`VfState` and the host netdev.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from typing import Any

from cni import recovery, trace, vf_netdev, vf_pf
from cni.errors import CniCode, CniError
from cni.mode import AttachmentContext
from cni.record import AttachmentRecord, VfPart
from sriov.errors import DeviceNotFoundError, VfBusyError
from sriov.types import DriverKind, IfName, VfSetting, VfState

log = logging.getLogger(__name__)
NETNS_TEARDOWN_TIMEOUT = 10.0
"""How long DEL waits for a VF to come home after its netns was deleted (kernel cleanup_net)."""
POLL_INTERVAL = 0.05


def vf_part(record: AttachmentRecord) -> VfPart:
    if record.vf is None or record.device_id is None:
        raise CniError(CniCode.STATE, f"attachment {record.container_id}/{record.ifname} has no "
                       "VF in its record")
    return record.vf


def restore_vf(nl: Any, host: Any, record: AttachmentRecord, netns: str) -> None:
    """Put the VF back exactly as snapshotted. Every step tolerates "already done".

    The netdev is first brought home: moved back from ``netns`` if it is still there, else found
    in the host by PCI address (the kernel returns a VF to the host, under the pod's name, MAC
    and MTU, once a deleted netns is torn down - asynchronously, so it is polled for). Then the
    PF-side settings (before the netdev MAC: some drivers refuse a MAC change while trust is
    off; a PF-side MAC that the VF driver reported goes back as "no admin MAC" first,
    :func:`cni.vf_pf.before_netdev_restore`), then the netdev's name, MAC, MTU, permanent
    address, altnames and admin state, then the PF-side MAC once more (the VF driver reports
    its restored MAC to the PF). See docs/cni.md "Exact restore on real VF drivers".
    """
    vf = vf_part(record)
    snap = vf.netdev
    with trace.step("vf.bring-home"):
        current = _bring_home(nl, host, record, netns) if snap is not None else None
    if vf.pf_state is not None:
        try:
            with trace.step("vf.pf-restore"):
                vf_pf.restore(host.vf_admin, IfName(vf.pf), vf.vf_index,
                          vf_pf.before_netdev_restore(vf.pf_state, snap.mac if snap else None))
        except DeviceNotFoundError as e:
            log.warning("VF %s: PF-side settings not restored: %s", record.device_id, e)
    if snap is None:
        return  # DPDK mode: nothing on the netdev side
    if current is None:
        log.warning(
            "VF %s has no netdev in the host netns; netdev side left as is", record.device_id
        )
    else:
        with trace.step("vf.netdev-restore"):
            vf_netdev.restore_in_host(nl, current, snap)
    if vf.pf_state is not None:
        # a VF driver reports the MAC it now wears to the PF (igb then shows it as the VF's MAC
        # where the snapshot shows none): put the PF-side MAC back once more, after the netdev
        with trace.step("vf.pf-mac"):
            _restore_pf_mac(host, record, vf.pf_state)


def _restore_pf_mac(host: Any, record: AttachmentRecord, pf_state: VfState) -> None:
    vf = vf_part(record)
    try:
        vf_pf.restore(host.vf_admin, IfName(vf.pf), vf.vf_index, pf_state, (VfSetting.MAC,))
    except DeviceNotFoundError as e:
        log.warning("VF %s: PF-side MAC not restored: %s", record.device_id, e)


def _bring_home(nl: Any, host: Any, record: AttachmentRecord, netns: str) -> str | None:
    """The VF netdev's name in the host netns after moving it there if needed (None: not found)."""
    assert record.device_id is not None
    if netns and os.path.exists(netns):
        in_pod = vf_netdev.find_link(nl, netns, record.ifname,
                                     vf_netdev.temp_name(record.device_id))
        if in_pod is not None:
            snap = vf_part(record).netdev
            assert snap is not None  # only called for a record with a netdev snapshot
            return vf_netdev.move_to_host(nl, in_pod, netns, snap.name)
    deadline = time.monotonic() + NETNS_TEARDOWN_TIMEOUT
    while True:
        try:
            current = host.sysfs.vf_netdev(record.device_id)
            if current is not None:
                return str(current)
            if host.sysfs.vf(record.device_id).driver_kind is not DriverKind.KERNEL:
                return None  # rebound to vfio/uio meanwhile: no netdev will come back
        except DeviceNotFoundError:
            log.warning("VF %s no longer exists (numvfs changed?): nothing to bring home",
                        record.device_id)
            return None  # DEL must still succeed and drop the record
        if time.monotonic() >= deadline:
            return None
        time.sleep(
            POLL_INTERVAL
        )  # netns teardown is asynchronous in the kernel; poll to a deadline


def reclaim_if_stale(ctx: AttachmentContext, pci: str) -> bool:
    """Refuse a VF a live attachment owns; restore and take over one whose netns is gone.

    Returns True when it took the VF over from a stale owner (its netdev may have a new name).

    Call with the VF lock held. The stale attachment's record stays (its late DEL releases its
    IPAM) but is marked ``released`` so that DEL never touches the VF again (sriov-cni #219).
    """
    owner = ctx.state.owner(pci)
    args = ctx.args
    if owner is None or owner.key == (args.container_id, args.ifname):
        return False
    cid, ifname, netns = owner.container_id, owner.ifname, owner.netns
    stale_args = dataclasses.replace(args, container_id=cid, ifname=ifname)
    record = recovery.load_or_quarantine(ctx.state, stale_args)
    vf = record.vf if record is not None and record.device_id == pci else None
    # a DEL answered whose deferred tail never ran (agent killed): stale, netns or not
    answered = vf is not None and record is not None and record.del_pending
    if netns and os.path.exists(netns) and not answered:
        raise VfBusyError(pci, f"in use by container {cid} interface {ifname} (netns {netns})")
    ctx.log.info("VF %s: owner %s/%s is stale (%s); restoring and reclaiming it", pci, cid,
                 ifname, "its DEL was answered" if answered else f"netns {netns or '-'} gone")
    if record is not None and vf is not None and not vf.released:
        restore_vf(ctx.netlink(), ctx.host(), record, netns)
        if answered:
            ctx.state.delete(cid, ifname)  # its DEL released IPAM and was answered
        elif ctx.state.path_of(cid, ifname).exists():
            ctx.state.save(dataclasses.replace(record, vf=dataclasses.replace(vf, released=True)))
    ctx.state.clear_owner(pci, cid, ifname)
    return True
