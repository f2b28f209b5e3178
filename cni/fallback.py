"""Fallback attachment mode: a macvlan or ipvlan on ``fallback.master`` when no VF is available.

ADD (reference macvlan/ipvlan behaviour, plus an optional on-demand 8021q parent):
  0. a *provisional* attachment record is saved before anything changes (network, netns, the
     link's temporary name, the VLAN parent): a crash at any later point leaves a record that
     the runtime's DEL or a GC finds and undoes (the plugin replaces it with the full record);
  1. the master (or ``<master>.<vid>``, created on demand, see :mod:`cni.fallback_vlan`) must
     exist; ``mtu`` must not exceed its MTU; ``CNI_IFNAME`` must not exist in the pod netns;
  2. the link is created under a random temporary name directly in the pod netns
     (``IFLA_NET_NS_FD``), renamed to ``CNI_IFNAME``, ``arp_notify``/``ndisc_notify`` set and
     brought **up before IPAM runs**, so a DHCP delegate's first DISCOVER leaves at once;
  3. IPAM ADD (in-process host-local, or the delegate from ``CNI_PATH``), addresses and routes.
  Any failure undoes everything in reverse order (IPAM DEL, link, VLAN parent, record).
  Fault points (``ctx.faults(step)``, a no-op outside tests) sit before each step:
  :data:`ADD_STEPS`.
DEL: IPAM DEL first (the mode owns IPAM, cni.mode), then delete the link (final or temporary
name) if the netns still exists, then drop the VLAN parent when no attachment record uses it
any more. Idempotent.
CHECK: link exists in the netns with the right kind, MAC, MTU and prevResult's addresses.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import logging
import secrets
from typing import Any

from cni import iface
from cni.errors import CniCode, CniError, config_error
from cni.fallback_vlan import VlanParents, vlan_ifname
from cni.mode import AttachmentContext, defer_in_pod, journal_of, release_ipam, require_netns
from cni.netconf import FallbackConf, FallbackType
from cni.protocol import Interface, Result
from cni.record import FallbackPart
from sriov import validate
from sriov.errors import DeviceNotFoundError, InvalidInputError, NetlinkOpError
from sriov.types import MacAddress

log = logging.getLogger(__name__)
TEMP_PREFIX = "sfb"
ADD_STEPS = ("record", "vlan-parent", "create", "rename", "up", "ipam", "save-result")
"""Named ADD steps; ``ctx.faults`` is called with each just before it runs (``vlan-parent``
only with ``fallback.vlan``; ``save-result`` = everything done, the full record not yet saved)."""


def temp_ifname() -> str:
    """A random 11-character name for the link before its rename (never collides in practice)."""
    return TEMP_PREFIX + secrets.token_hex(4)


def effective_mac(ctx: AttachmentContext, fb: FallbackConf) -> MacAddress | None:
    """``fallback.mac`` < top-level ``mac`` < ``CNI_ARGS MAC=`` < ``runtimeConfig.mac``.

    ``NetConf.mac`` already resolves the last three (validated there); ``fallback.mac`` is the
    lowest-precedence default. ipvlan links share the master's MAC: a requested MAC is ignored.
    """
    mac = ctx.conf.mac or fb.mac
    if mac and fb.type is FallbackType.IPVLAN:
        ctx.log.warning("ipvlan shares the master's MAC; ignoring requested MAC %s", mac)
        return None
    return mac


def _conf(ctx: AttachmentContext) -> FallbackConf:
    fb = ctx.conf.fallback
    if fb is None:
        raise CniError(
            CniCode.INVALID_CONFIG, "fallback mode selected but no 'fallback' configured"
        )
    return fb


class FallbackMode:
    """macvlan/ipvlan attachment; stateless (the attachment record carries what DEL needs)."""

    def add(self, ctx: AttachmentContext) -> Result:
        fb = _conf(ctx)
        nl = ctx.netlink()
        netns, ifname = ctx.args.netns, validate.ifname(ctx.args.ifname)
        mtu = fb.mtu or ctx.conf.mtu
        mac = effective_mac(ctx, fb)
        require_netns(netns)
        with contextlib.ExitStack() as undo:
            try:
                result = self._add(ctx, fb, nl, netns, ifname, mtu, mac, undo)
            except BaseException:
                ctx.log.info("ADD failed; rolling back")
                raise
            undo.pop_all()
        with contextlib.suppress(Exception):
            nl.forget_netns(netns)
        return result

    def _add(self, ctx: AttachmentContext, fb: FallbackConf, nl: Any, netns: str, ifname: str,
             mtu: int | None,
             mac: MacAddress | None, undo: contextlib.ExitStack) -> Result:
        tmp = temp_ifname()
        parent = vlan_ifname(fb.master, fb.vlan) if fb.vlan is not None else fb.master
        self._save_provisional(ctx, netns, tmp, parent if fb.vlan is not None else None, undo)
        if fb.vlan is not None:
            self._vlan_parent(ctx, fb, nl, parent, undo)
        if mtu is not None:  # otherwise creating the link is the existence check (one request less)
            master = nl.link(parent)
            if master is None:
                raise DeviceNotFoundError(
                    "fallback master", parent, "no such interface in the host netns"
                )
            if mtu > master.mtu:
                raise config_error("fallback.mtu", mtu, f"exceeds the MTU {master.mtu} of {parent}")
        ctx.faults("create")
        if fb.type is FallbackType.MACVLAN:
            nl.create_macvlan(tmp, parent, fb.mode, netns, mtu=mtu, mac=mac)
        else:
            nl.create_ipvlan(tmp, parent, fb.mode, netns, mtu=mtu)
        current: list[str | int] = [tmp]  # how to address the link now, for the rollback
        undo.callback(lambda: self._delete_quietly(nl, netns, current[-1]))
        # sysctls follow the link through the rename; this setns thread also opens the netns's
        # netlink socket and reads the ifindex (every later request uses it), MAC and MTU
        link = iface.prepare_in_netns(nl, netns, tmp)
        current.append(link.index)  # by ifindex from here on: whatever its name is
        ctx.faults("rename")
        ctx.faults("up")
        try:
            # rename and up in one request (the kernel renames first); up before IPAM: a DHCP
            # client gets its answer on the first try
            nl.set_link(link.index, netns, new_name=ifname, up=True)
        except NetlinkOpError as e:
            if e.errno == errno.EEXIST:
                raise CniError(
                    CniCode.ATTACHMENT_EXISTS,
                    f"interface {ifname} already exists in {netns}",
                    "CNI ADD must not replace an existing interface",
                ) from None
            raise
        journal = journal_of(ctx)
        journal.stage(fallback=dataclasses.replace(
            journal.current.fallback or FallbackPart(), link_type=str(fb.type),
            master=fb.master, parent=parent))
        interface = Interface(name=ifname, mac=str(mac) if mac is not None else link.mac,
                              mtu=int(mtu) if mtu is not None else link.mtu, sandbox=netns)
        if not ctx.conf.ipam_type:
            ctx.faults("save-result")
            return Result(
                cni_version=ctx.conf.cni_version, interfaces=(interface,), dns=ctx.conf.dns
            )
        ctx.faults("ipam")
        undo.callback(self._ipam_release_quietly, ctx)
        ipam_result = ctx.ipam.add(ctx.conf, ctx.args)
        if not ipam_result.ips:
            raise CniError(CniCode.IPAM, f"IPAM {ctx.conf.ipam_type} returned no IP configuration")
        result = iface.with_interface(ipam_result, interface)
        iface.configure(nl, netns, link.index, result)
        if ctx.conf.dns.to_dict():
            result = dataclasses.replace(result, dns=ctx.conf.dns)
        ctx.faults("save-result")  # the plugin saves the full record once this returns
        return result.with_version(ctx.conf.cni_version)

    @staticmethod
    def _save_provisional(ctx: AttachmentContext, netns: str, tmp: str, vlan_parent: str | None,
                          undo: contextlib.ExitStack) -> None:
        """Save the provisional record before the first change (what DEL/GC need to undo a crash).

        With a VLAN it also makes this attachment a user of ``<master>.<vid>`` before the
        sub-interface is ensured, so a concurrent DEL of its previous last user (which counts the
        users under the VLAN lock) cannot delete it under us, and a crash right after its
        creation leaves a record naming it.
        """
        ctx.faults("record")
        journal = journal_of(ctx)
        journal.save(fallback=FallbackPart(temp_ifname=tmp, vlan_parent=vlan_parent))
        undo.callback(journal.discard)  # registered first: runs last on rollback

    def _vlan_parent(self, ctx: AttachmentContext, fb: FallbackConf, nl: Any, parent: str,
                     undo: contextlib.ExitStack) -> None:
        """Ensure ``<master>.<vid>`` (named by the provisional record already), under the lock."""
        assert fb.vlan is not None
        ctx.faults("vlan-parent")
        vlans = VlanParents(ctx.state, nl)
        if nl.link(fb.master) is None:
            raise DeviceNotFoundError(
                "fallback master", fb.master, "no such interface in the host netns"
            )
        key = (ctx.args.container_id, ctx.args.ifname)
        undo.callback(self._release_vlan_quietly, vlans, parent, key)
        with vlans.locked():
            vlans.ensure(fb.master, fb.vlan)

    # ------------------------------------------------------------------ DEL
    def delete(self, ctx: AttachmentContext) -> None:
        """IPAM DEL, then the link in ``ctx.args.netns`` (the record's own netns, chosen by the
        plugin: :func:`cni.recovery.trusted_netns`; "" when it is gone: nothing to do there)."""
        release_ipam(ctx)  # first: on error the record stays and the runtime's retry finishes
        netns = ctx.args.netns
        record = ctx.record
        try:
            ifname = validate.ifname(ctx.args.ifname)
        except InvalidInputError:
            return
        # the link's deletion waits for the kernel (an RCU grace period, ~25 ms): in the agent
        # it runs after the reply, the pod netns held open until it is done
        if not defer_in_pod(ctx, record, netns, lambda pinned: _delete_links(ctx, pinned, ifname)):
            _delete_links(ctx, netns, ifname)

    # ------------------------------------------------------------------ CHECK
    def check(self, ctx: AttachmentContext) -> None:
        ctx.ipam.check(ctx.conf, ctx.args)
        fb = _conf(ctx)
        prev = ctx.conf.prev_result
        if prev is None:  # the plugin refuses CHECK without one before calling a mode
            raise CniError(CniCode.INVALID_CONFIG, "required prevResult missing")
        netns, ifname = ctx.args.netns, ctx.args.ifname
        index = next((i for i, itf in enumerate(prev.interfaces)
                      if itf.name == ifname and itf.sandbox == netns), None)
        if index is None:
            raise CniError(
                CniCode.INVALID_CONFIG, f"CHECK: prevResult has no interface {ifname} in {netns}"
            )
        expected = prev.interfaces[index]
        nl = ctx.netlink()
        part = ctx.record.fallback if ctx.record is not None else None
        parent = (part.parent or part.vlan_parent) if part is not None else None
        parent = parent or fb.master
        if nl.link(parent) is None:
            raise CniError(CniCode.DEVICE_NOT_FOUND, f"CHECK: fallback master {parent} is gone")
        try:
            link = nl.link(ifname, netns)
            if link is None:
                raise CniError(CniCode.ATTACHMENT_CHANGED, f"CHECK: {ifname} missing in {netns}")
            if link.kind != str(fb.type):
                raise CniError(
                    CniCode.ATTACHMENT_CHANGED,
                    f"CHECK: {ifname} is a {link.kind} link, expected {fb.type}",
                )
            if expected.mac and link.mac != expected.mac.lower():
                raise CniError(
                    CniCode.ATTACHMENT_CHANGED, f"CHECK: {ifname} MAC {link.mac} != {expected.mac}"
                )
            mtu = fb.mtu or ctx.conf.mtu or expected.mtu  # unset in the config: what ADD reported
            if mtu and link.mtu != mtu:
                raise CniError(
                    CniCode.ATTACHMENT_CHANGED, f"CHECK: {ifname} MTU {link.mtu} != {mtu}"
                )
            iface.check_addresses(nl, netns, ifname, prev, index)
        finally:
            with contextlib.suppress(Exception):
                nl.forget_netns(netns)

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _delete_quietly(nl: Any, netns: str, name: str | int) -> None:
        try:
            iface.delete_link_in_netns(nl, netns, name)
        except Exception as e:
            log.error("rollback: cannot delete %s in %s: %s", name, netns, e)

    @staticmethod
    def _ipam_release_quietly(ctx: AttachmentContext) -> None:
        try:
            ctx.ipam.delete(ctx.conf, ctx.args)
        except Exception as e:
            log.error("rollback: IPAM release failed: %s", e)

    @staticmethod
    def _release_vlan_quietly(vlans: VlanParents, parent: str, key: tuple[str, str]) -> None:
        try:
            with vlans.locked():
                vlans.release(parent, excluding=key)
        except Exception as e:
            log.error("rollback: cannot release VLAN sub-interface %s: %s", parent, e)


def _delete_links(ctx: AttachmentContext, netns: str, ifname: str) -> None:
    """DEL's link work: ``ifname`` in ``netns`` (and the temporary name of an ADD that crashed
    before its rename), then the VLAN parent when no attachment uses it any more."""
    nl = ctx.netlink()
    record = ctx.record
    part = (record.fallback if record is not None else None) or FallbackPart()
    if iface.delete_link_in_netns(nl, netns, ifname):
        ctx.log.info("deleted %s in %s", ifname, netns)
    temp = part.temp_ifname if record is not None and not record.complete else None
    if temp and str(temp).startswith(TEMP_PREFIX):  # ADD crashed between create and rename
        with contextlib.suppress(InvalidInputError):
            if iface.delete_link_in_netns(nl, netns, validate.ifname(str(temp))):
                ctx.log.info("deleted %s (temporary name of a crashed ADD) in %s", temp, netns)
    parent = part.vlan_parent
    if parent:
        vlans = VlanParents(ctx.state, nl)
        with vlans.locked():
            vlans.release(str(parent), excluding=(ctx.args.container_id, ctx.args.ifname))
