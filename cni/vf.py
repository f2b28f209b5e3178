"""VF mode (kernel netdev moved into the pod) and DPDK mode (vfio/uio-bound VF): ADD, DEL, CHECK.

ADD registers the undo of every step on an :class:`contextlib.ExitStack`; a failure anywhere
unwinds all of them, so the VF, the state dir and IPAM are exactly as before. Fault points
(``ctx.faults(step)``, a no-op outside tests) sit before each step: :data:`ADD_STEPS`.
DEL restores the snapshot taken by ADD, wherever the VF netdev is now (pod netns, or back in
the host under the pod's name after the netns was destroyed, sriov-cni #126) and leaves a VF
alone that another attachment owns by now (sriov-cni #219). See docs/cni.md "VF and DPDK modes".
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import logging
from typing import TYPE_CHECKING, Any

from cni import iface, trace, vf_netdev, vf_pf, vf_rdma
from cni.device_modes import is_dpdk
from cni.errors import CniCode, CniError
from cni.mode import (
    AttachmentContext,
    chained_result,
    defer_in_pod,
    forget_netns,
    ifname_exists,
    journal_of,
    quietly,
    release_ipam,
    require_netns,
    require_owned_record,
)
from cni.protocol import Interface, Result
from cni.record import AttachmentRecord, VfPart
from cni.vf_checks import check_interface, check_pf_settings
from cni.vf_state import reclaim_if_stale, restore_vf, vf_part
from sriov.errors import DeviceNotFoundError, NetlinkOpError
from sriov.types import IfName, VfSetting, VirtualFunction

if TYPE_CHECKING:
    from sriov.netlink import Netlink

log = logging.getLogger(__name__)
ADD_STEPS = ("snapshot", "pf-config", "move", "rename", "mac-mtu", "up", "ipam", "save-result")
"""Named ADD steps; ``ctx.faults`` is called with each one just before it runs."""


def _resolve(ctx: AttachmentContext, *, dpdk: bool) -> VirtualFunction:
    """The VF named by ``ctx.device_id`` (must be a VF of an SR-IOV PF on this host)."""
    if ctx.device_id is None:
        raise CniError(CniCode.INVALID_CONFIG, "deviceID is required for the VF mode")
    vf = ctx.host().sysfs.vf(ctx.device_id)
    if vf.pf_netdev is None:
        raise DeviceNotFoundError(
            "PF netdev", vf.pf_address, f"PF of VF {vf.address} has no netdev"
        )
    if dpdk and not is_dpdk(vf):
        raise DeviceNotFoundError("DPDK VF", vf.address, f"bound to {vf.driver or 'no driver'}")
    return vf


class _Attach:
    """One ADD: shared between the two modes, ``netdev`` says whether a VF netdev moves."""

    def __init__(self, ctx: AttachmentContext, vf: VirtualFunction, undo: contextlib.ExitStack,
                 netns: str) -> None:
        self.ctx, self.vf, self.undo, self.netns = ctx, vf, undo, netns
        self.nl = ctx.netlink()
        self.admin = ctx.host().vf_admin
        if vf.pf_netdev is None:  # _resolve refuses such a VF; a PF netdev is needed from here on
            raise DeviceNotFoundError(
                "PF netdev", vf.pf_address, f"PF of VF {vf.address} has no netdev"
            )
        self.pf: IfName = vf.pf_netdev
        self.pod_index: int | None = None
        """The VF netdev's ifindex in the pod once it is there."""
        self.record = VfPart(pf=str(vf.pf_netdev), vf_index=vf.index)
        self.journal = journal_of(ctx)

    def step(self, name: str) -> None:
        self.ctx.faults(name)

    def snapshot_and_save(self, netdev: str | None) -> None:
        """Both snapshots, saved (provisional record, with the network: a GC finds a crash)."""
        self.step("snapshot")
        pf_state = self.admin.read(self.pf, self.vf.index)
        snap = vf_netdev.snapshot(self.nl, netdev) if netdev else None
        self.record = dataclasses.replace(self.record, pf_state=pf_state, netdev=snap)
        self.journal.save(vf=self.record)
        self.undo.callback(quietly(log, "remove attachment record", self.journal.discard))

    def configure_pf(self) -> None:
        self.step("pf-config")
        snap = self.record.pf_state
        assert snap is not None
        host_netdev = self.record.netdev
        if host_netdev is not None:
            # the VF driver reports the MAC its netdev gets back to the PF: clear it last
            self.undo.callback(quietly(log, "restore PF-side VF MAC", lambda: vf_pf.restore(
                self.admin, self.pf, self.vf.index, snap, (VfSetting.MAC,))))
            # an admin MAC also changes the VF netdev's MAC while it is in the host (igbvf and the
            # emulation both); undone after the PF-side restore below (ExitStack is LIFO)
            self.undo.callback(quietly(log, "restore host netdev MAC",
                                       lambda: vf_netdev.restore_mac(self.nl, host_netdev)))
        first = vf_pf.before_netdev_restore(snap, host_netdev.mac if host_netdev else None)
        applied = vf_pf.apply(
            self.admin, self.pf, self.vf.index, self.ctx.conf.vf_settings(), first
        )
        self.undo.callback(quietly(log, "restore PF-side VF settings", lambda: vf_pf.restore(
            self.admin, self.pf, self.vf.index, first, applied)))

    def move_into_pod(self) -> Interface:
        """Step 3: into the pod netns as CNI_IFNAME (no altnames), sysctls, MAC, MTU, up.

        A VF netdev without altnames moves and gets its pod name in one request. With altnames it
        moves under a per-VF temporary name first: an altname equal to CNI_IFNAME would make the
        rename fail (sriov-cni #445), and they are dropped in the pod before the rename."""
        nl, netns, snap, ifname = self.nl, self.netns, self.record.netdev, self.ctx.args.ifname
        assert snap is not None
        direct = not snap.altnames
        target = ifname if direct else vf_netdev.temp_name(self.vf.address)
        where = [snap.name]
        """The VF netdev's name in the pod: its host name until the move's rename is done."""
        self.step("move")
        if snap.up:  # a move closes the netdev; it comes back down
            self.undo.callback(quietly(log, "set VF netdev up", lambda: nl.set_up(snap.name)))
        # registered before the move: a move is not atomic with its rename (the kernel renames
        # after moving), so a refused name can leave the VF in the pod under its host name
        self.undo.callback(quietly(log, "move VF netdev back", lambda: _move_back(
            nl, netns, where[-1], snap.name)))
        try:
            nl.move_to_netns(snap.name, None, netns, new_name=target)
        except NetlinkOpError as e:
            if e.errno == errno.EEXIST:
                raise ifname_exists(ifname, netns) from None
            raise
        where.append(target)
        # sysctls (they follow a rename), the pod netns's socket and the ifindex, MAC and MTU in
        # the pod, in one setns thread: every later request addresses the link by ifindex
        facts = iface.prepare_in_netns(nl, netns, target)
        index = facts.index
        if not direct:
            dropped = vf_netdev.drop_altnames(nl, target, netns)
            self.undo.callback(quietly(log, "re-add altnames", lambda: _add_altnames(
                nl, where[-1], dropped, netns)))
            self.step("rename")
            try:
                nl.rename(index, ifname, netns)
            except NetlinkOpError as e:
                if e.errno == errno.EEXIST:
                    raise ifname_exists(ifname, netns) from None
                raise
            where.append(ifname)  # the sysctls set above follow the rename
        else:
            self.step("rename")  # done by the move
        self.step("mac-mtu")
        mac, mtu = self.ctx.conf.mac, self.ctx.conf.mtu
        if mac or mtu:
            self.undo.callback(quietly(log, "restore MAC/MTU", lambda: nl.set_link(
                index, netns, mac=snap.mac if mac else None, mtu=snap.mtu if mtu else None)))
        self.step("up")
        self.undo.callback(quietly(log, "set down", lambda: nl.set_down(index, netns)))
        nl.set_link(index, netns, mac=mac or None, mtu=mtu or None, up=True)
        self.pod_index = index
        return Interface(name=ifname, mac=mac or facts.mac, mtu=mtu or facts.mtu, sandbox=netns,
                         pci_id=self.vf.address)

    def move_rdma(self) -> None:
        """The VF's RDMA devices into the pod after its netdev (exclusive RDMA netns mode only);
        recorded before the first move, each move undone on rollback."""
        names = vf_rdma.names_to_move(self.ctx, self.vf)
        if names:
            self.record = dataclasses.replace(self.record, rdma=names)
            self.journal.save(vf=self.record)
            vf_rdma.move_into_pod(self.ctx, names, self.netns,
                                  lambda what, fn: self.undo.callback(quietly(log, what, fn)))

    def run_ipam(self, configure: bool) -> Result:
        self.step("ipam")
        ctx = self.ctx
        result = ctx.ipam.add(ctx.conf, ctx.args)
        self.undo.callback(quietly(log, "IPAM DEL", lambda: ctx.ipam.delete(ctx.conf, ctx.args)))
        if configure:
            iface.configure(self.nl, self.netns, self.pod_index or ctx.args.ifname, result)
        return result

    def save_result(self, result: Result) -> None:
        """The VF's owner record, with a copy of the complete record (recovers a damaged one);
        the plugin then saves the record itself."""
        self.step("save-result")
        args, state = self.ctx.args, self.ctx.state
        record = self.journal.stage(result=result)
        state.set_owner(self.vf.address, dataclasses.replace(record, complete=True))
        self.undo.callback(quietly(log, "clear VF owner", lambda: state.clear_owner(
            self.vf.address, args.container_id, args.ifname)))


class VfMode:
    """Kernel VF: PF-side settings, the netdev moved into the pod, IPAM configured on it."""

    mode = "vf"
    moves_netdev = True

    def add(self, ctx: AttachmentContext) -> Result:
        with trace.step("vf.resolve"):
            vf = _resolve(ctx, dpdk=not self.moves_netdev)
        netns = require_netns(ctx.args.netns)
        nl = ctx.netlink()
        try:
            # the plugin holds the VF lock (cni.plugin.Plugin._device_lock) from before this
            # call until the attachment record is saved, and around DEL and GC
            with contextlib.ExitStack() as undo:
                with trace.step("vf.reclaim"):
                    if reclaim_if_stale(ctx, vf.address):
                        vf = _resolve(ctx, dpdk=not self.moves_netdev)  # a reclaim renames it
                if self.moves_netdev and not vf.netdev:
                    raise DeviceNotFoundError("VF netdev", vf.address,
                                              "the VF has no netdev in the host netns")
                attach = _Attach(ctx, vf, undo, netns)
                with trace.step("vf.snapshot"):
                    attach.snapshot_and_save(vf.netdev if self.moves_netdev else None)
                with trace.step("vf.pf-config"):
                    attach.configure_pf()
                with trace.step("vf.move"):
                    iface = (
                        attach.move_into_pod() if self.moves_netdev
                        else self._dpdk_iface(ctx, attach)
                    )
                attach.move_rdma()
                result = chained_result(ctx, iface, attach.run_ipam(configure=self.moves_netdev))
                with trace.step("vf.save-result"):
                    attach.save_result(result)
                undo.pop_all()
                ctx.log.info("ADD %s: VF %s (%s vf %s) attached as %s", self.mode, vf.address,
                             vf.pf_netdev, vf.index, ctx.args.ifname)
                return result
        finally:
            forget_netns(nl, netns)

    @staticmethod
    def _dpdk_iface(ctx: AttachmentContext, attach: _Attach) -> Interface:
        mac = ctx.conf.mac or attach.admin.read(attach.pf, attach.vf.index).mac
        return Interface(name=ctx.args.ifname, mac="" if mac == "00:00:00:00:00:00" else mac,
                         sandbox=attach.netns, pci_id=attach.vf.address)

    def delete(self, ctx: AttachmentContext) -> None:
        """Restore the VF from ``ctx.record`` in ``ctx.args.netns`` (the plugin picked the
        record's own netns, :func:`cni.recovery.trusted_netns`); VF lock held by the plugin."""
        release_ipam(ctx)  # first: on error the record stays and the runtime's retry finishes
        record = ctx.record
        if record is None or record.device_id is None:
            return
        pci, args, netns = record.device_id, ctx.args, ctx.args.netns
        if vf_part(record).released:
            ctx.log.info("DEL: VF %s was reclaimed by a later attachment; leaving it", pci)
            return
        with trace.step("vf.owner"):
            owner = ctx.state.owner(pci)
        if owner and owner.key != (args.container_id, args.ifname):
            ctx.log.warning("DEL: VF %s is now owned by %s/%s; not touching it (sriov-cni #219)",
                            pci, owner.container_id, owner.ifname)
            return
        if not (self.moves_netdev and defer_in_pod(
                ctx, record, netns, lambda pinned: _restore(ctx, record, pinned))):
            _restore(ctx, record, netns)

    def check(self, ctx: AttachmentContext) -> None:
        ctx.ipam.check(ctx.conf, ctx.args)
        assert ctx.record is not None
        record = require_owned_record(ctx, vf_part(ctx.record).released, "VF")
        host = ctx.host()
        if self.moves_netdev:
            nl = ctx.netlink()
            try:
                check_interface(nl, ctx, record)
            finally:
                forget_netns(nl, ctx.args.netns)
        else:
            assert record.device_id is not None  # require_owned_record checked it
            vf = host.sysfs.vf(record.device_id)
            if not is_dpdk(vf):
                raise CniError(CniCode.ATTACHMENT_CHANGED, f"VF {vf.address} is no longer bound "
                               f"to a DPDK driver (driver {vf.driver or 'none'})")
        check_pf_settings(host.vf_admin, ctx.conf.vf_settings(), record)


class DpdkMode(VfMode):
    """vfio-pci/uio-bound VF: PF-side settings and IPAM only; no netdev to move."""

    mode = "dpdk"
    moves_netdev = False


def _restore(ctx: AttachmentContext, record: AttachmentRecord, netns: str) -> None:
    """DEL's restore of the VF (``netns``: where its netdev is) and the release of its owner."""
    assert record.device_id is not None
    try:
        vf_rdma.move_home(ctx, vf_part(record).rdma, netns)  # reverse of ADD: before the netdev
        restore_vf(ctx.netlink(), ctx.host(), record, netns)
    finally:
        forget_netns(ctx.netlink(), netns)
    with trace.step("vf.clear-owner"):
        ctx.state.clear_owner(record.device_id, record.container_id, record.ifname)


def _move_back(nl: Any, netns: str, pod_name: str, host_name: str) -> None:
    """Rollback of the move: the VF netdev ``pod_name`` back into the host as ``host_name``
    (nothing when it never left the host)."""
    if nl.link(pod_name, netns) is not None:
        nl.move_to_netns(pod_name, netns, None, new_name=host_name)


def _add_altnames(nl: Netlink, name: str, altnames: tuple[str, ...], netns: str) -> None:
    for alt in altnames:
        nl.add_altname(name, alt, netns)


__all__ = ["ADD_STEPS", "DpdkMode", "VfMode"]
