"""Verb handlers: pick an attachment mode, keep the state store, run GC and STATUS.

Modes (VF, DPDK, NIC, fallback) live in their own modules and implement :class:`cni.mode.Mode`
(the typed contract, with :class:`cni.mode.AttachmentContext`); they are looked up by name in
:data:`MODE_REGISTRY` (imported lazily, so pyroute2 is only loaded when a mode needs netlink).
A mode owns its IPAM (ADD, rollback, DEL, CHECK); the plugin never calls IPAM for an
attachment, only to release a reservation that has no attachment record and for GC/STATUS.
See docs/cni.md "Writing a mode" for the contract.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from cni import recovery, trace
from cni.errors import CniCode, CniError, from_exception
from cni.ipam import IpamRunner
from cni.mode import AttachmentContext, Mode, require_netns
from cni.netconf import NetConf
from cni.protocol import CmdArgs, Command, Result
from cni.record import AttachmentMode, AttachmentRecord, Journal, NetnsId
from cni.state import StateStore, boottime_ns
from sriov.types import PciAddress

__all__ = ["MODE_REGISTRY", "AttachmentContext", "Mode", "Plugin", "load_mode", "register_mode",
           "require_netns"]
log = logging.getLogger(__name__)


MODE_REGISTRY: dict[str, str] = {
    "vf": "cni.vf:VfMode",
    "dpdk": "cni.vf:DpdkMode",
    "fallback": "cni.fallback:FallbackMode",
    "nic": "cni.nic:NicMode",
}
"""Mode name -> implementation; which mode serves a device is :mod:`cni.device_modes`."""
_mode_cache: dict[str, Mode] = {}


def register_mode(name: str, target: str | Mode) -> None:
    """Register a mode by ``"module:Class"`` path or instance (tests register fakes)."""
    _mode_cache.pop(name, None)
    if isinstance(target, str):
        MODE_REGISTRY[name] = target
    else:
        MODE_REGISTRY[name] = f"<instance {type(target).__name__}>"
        _mode_cache[name] = target


def load_mode(name: str) -> Mode:
    if name not in _mode_cache:
        target = MODE_REGISTRY.get(name)
        if target is None or ":" not in target:
            raise CniError(CniCode.INTERNAL, f"unknown attachment mode {name!r}")
        module, attr = target.split(":", 1)
        try:
            _mode_cache[name] = getattr(importlib.import_module(module), attr)()
        except (ImportError, AttributeError) as e:
            raise CniError(
                CniCode.INTERNAL, f"attachment mode {name!r} is not available", str(e)
            ) from e
    return _mode_cache[name]


DeviceLookup = Callable[[CmdArgs, NetConf, StateStore], PciAddress | None]
"""Finds the pod's allocated VF when the netconf has no deviceID (pod-resources)."""
ModeOfDevice = Callable[[PciAddress], str]
"""The mode serving a device (:func:`cni.device_modes.mode_of`; raises DeviceNotFoundError
for a device the CNI does not attach)."""
ClaimCheck = Callable[[CmdArgs, NetConf, PciAddress], None]
"""Raises when the configured deviceID is allocated by kubelet to another pod (pod-resources)."""
DeviceGuard = Callable[[PciAddress], None]
"""Raises when a VF is not managed (no pool of the device plugin config selects it)."""


class Plugin:
    def __init__(
        self,
        *,
        netlink_factory: Callable[[], Any],
        host_factory: Callable[[], Any],
        ipam_factory: Callable[[NetConf, CmdArgs], IpamRunner],
        state: StateStore | None = None,
        device_lookup: DeviceLookup | None = None,
        mode_of_device: ModeOfDevice | None = None,
        claim_check: ClaimCheck | None = None,
        device_guard: DeviceGuard | None = None,
        sysfs_root: Path = Path("/"),
    ) -> None:
        self.netlink_factory = netlink_factory
        self.host_factory = host_factory
        self.ipam_factory = ipam_factory
        self.state = state or StateStore()
        self.device_lookup = device_lookup
        self.claim_check = claim_check
        self.device_guard = device_guard
        """None: any VF of the node; else ADD refuses VFs outside the pools (cni.pool_guard)."""
        self.mode_of_device = mode_of_device or self._mode_from_sysfs
        self.sysfs_root = sysfs_root
        self.defer: Callable[[Callable[[], None]], None] | None = None
        """The agent's runner of DEL tails after the reply (:class:`cni.main.Runtime`); None
        (standalone, GC): every DEL finishes before it answers."""
        self.faults: Callable[[str], None] = lambda step: None
        """Handed to every :class:`AttachmentContext` (tests inject failures at named steps)."""
        self.started = boottime_ns()
        """When the request started (CLOCK_BOOTTIME ns, an upper bound): an ADD that started
        before the last DEL of its attachment finished is late and fails (issue 11 item 3)."""

    # ---------------------------------------------------------------- helpers
    def _store(self, conf: NetConf) -> StateStore:
        """The configured state store, whatever the netconf's ``stateDir`` says.

        VF ownership records and VF locks live there: a per-request directory would give a
        second pod a store where a live pod's VF looks free (issue 11 #5), and root would create
        directories wherever a netconf points. A ``stateDir`` equal to the configured one is
        accepted silently (configs written for earlier versions), any other is ignored."""
        if conf.state_dir and os.path.normpath(conf.state_dir) != os.path.normpath(self.state.root):
            log.warning("ignoring netconf stateDir %s: state is kept in the configured %s",
                        conf.state_dir, self.state.root)
        return self.state

    def _ctx(self, args: CmdArgs, conf: NetConf, **kw: Any) -> AttachmentContext:
        adapter = logging.LoggerAdapter(log, {"container_id": args.container_id})
        return AttachmentContext(
            args=args,
            conf=conf,
            state=self._store(conf),
            ipam=trace.maybe_traced(self.ipam_factory(conf, args), "ipam"),
            netlink=trace.traced_factory(self.netlink_factory, "netlink"),
            host=trace.traced_factory(self.host_factory, "host"),
            log=adapter,
            faults=self.faults,
            **kw,
        )

    def _mode_from_sysfs(self, device: PciAddress) -> str:
        from cni.device_modes import mode_of
        from sriov.sysfs import SysfsReader
        from sriov.types import DriverKind

        # the device's class and driver link are all it needs and are always current: the
        # plain reader, not the host's (which on an emulated host first re-syncs netdev entries)
        device_info = SysfsReader(self.sysfs_root).device(device)
        if device_info.driver_kind is DriverKind.NONE:
            device_info = self.host_factory().sysfs.device(device)  # no driver: has it a netdev?
        return mode_of(device_info)

    def select_mode(
        self, args: CmdArgs, conf: NetConf, state: StateStore
    ) -> tuple[str, PciAddress | None]:
        device = conf.device_id
        if device is not None and self.claim_check is not None:
            self.claim_check(args, conf, device)  # a pod must not take another pod's VF
        if device is None and self.device_lookup is not None:
            device = self.device_lookup(args, conf, state)
        if device is not None:
            if self.device_guard is not None:
                self.device_guard(device)  # before anything is touched (even the emulated tree)
            return self.mode_of_device(device), device
        if conf.fallback is not None:
            return "fallback", None
        raise CniError(
            CniCode.INVALID_CONFIG,
            "deviceID is required",
            "no deviceID/pciBusID in the config, no VF allocated to the pod "
            "(pod-resources) and no 'fallback' configured",
        )

    # ---------------------------------------------------------------- verbs
    @staticmethod
    def _device_lock(
        state: StateStore, device: str | None
    ) -> contextlib.AbstractContextManager[None]:
        """The per-VF ``flock`` for device-backed attachments (none for the fallback mode).

        Taken after the attachment lock, around mode work, IPAM and the record, so two
        attachments of one VF (a stale owner reclaimed by a new pod) never interleave.
        """
        return state.vf_lock(device) if device else contextlib.nullcontext()

    @contextlib.contextmanager
    def _attachment_lock(self, state: StateStore, args: CmdArgs) -> Iterator[None]:
        """The per-attachment lock every verb takes first, before it reads anything.

        Its file is unlinked on the way out, while still held (a waiter then locks a fresh
        file, :func:`cni.state._flock`): no lock file per pod accumulates."""
        self.faults("attachment-lock")
        with state.attachment_lock(args.container_id, args.ifname):
            try:
                yield
            finally:
                state.drop_attachment_lock(args.container_id, args.ifname)

    def add(self, args: CmdArgs, conf: NetConf) -> Result:
        state = self._store(conf)
        with self._attachment_lock(state, args):
            recovery.refuse_late_add(state, args, self.started)
            mode_name, device = self.select_mode(args, conf, state)
            with self._device_lock(state, device):
                if recovery.load_or_quarantine(state, args) is not None:
                    raise CniError(
                        CniCode.ATTACHMENT_EXISTS,
                        f"attachment {args.container_id}/{args.ifname} already exists",
                        "the runtime must DEL it before adding it again",
                    )
                journal = Journal(state, AttachmentRecord(
                    mode=AttachmentMode(mode_name),
                    container_id=args.container_id, ifname=args.ifname, network=conf.name,
                    netns=args.netns, netns_id=NetnsId.of(args.netns), device_id=device,
                    netconf=conf.raw.decode(errors="replace")))
                ctx = self._ctx(args, conf, device_id=device, journal=journal)
                mode = load_mode(mode_name)
                log.info("ADD mode=%s device=%s", mode_name, device or "-")
                with trace.step(f"{mode_name}.add"):
                    result = mode.add(ctx)
                try:
                    with trace.step("record.complete"):
                        journal.save(complete=True, result=result)
                except CniError as e:
                    log.error("cannot save attachment record: %s; rolling back", e)
                    self._undo(mode, dataclasses.replace(ctx, record=journal.current))
                    with contextlib.suppress(OSError):  # the mode's provisional record
                        journal.discard()
                    raise
                return result

    @staticmethod
    def _undo(mode: Mode, ctx: AttachmentContext) -> None:
        try:
            mode.delete(ctx)  # IPAM DEL included
        except Exception as e:
            log.error("rollback failed: %s", from_exception(e))

    def delete(self, args: CmdArgs, conf: NetConf) -> None:
        """Undo the attachment from its own record, in the netns the record names.

        Under the attachment lock: a racing ADD either finished (and is undone here) or has
        not started (and then fails: :func:`cni.recovery.refuse_late_add` sees the tombstone).
        """
        state = self._store(conf)
        with contextlib.ExitStack() as held:
            held.enter_context(self._attachment_lock(state, args))
            record = recovery.load_or_recover(state, args, conf, self.netlink_factory)
            tail = None
            if record is None:
                # nothing of ours to undo (double DEL, or ADD failed and rolled back); still
                # release IPAM so a reservation can never leak, but never fail the DEL for it
                try:
                    self._ctx(args, conf).ipam.delete(conf, args)
                except Exception as e:
                    log.warning(
                        "DEL without attachment record: IPAM release failed: %s", from_exception(e)
                    )
            else:
                tail = self._remove(state, dataclasses.replace(
                    args, netns=recovery.trusted_netns(args.netns, record)), conf, record,
                    held=held if self.defer is not None else None)
            recovery.tombstone_quietly(state, args)  # the DEL is answered now, tail or not
            if tail is not None and self.defer is not None:
                self.defer(_locked_tail(tail, held.pop_all(), args))

    def _remove(self, state: StateStore, args: CmdArgs, conf: NetConf,
                record: AttachmentRecord, *, held: contextlib.ExitStack | None = None
                ) -> Callable[[], None] | None:
        """Mode cleanup (IPAM release included), record removal: DEL and GC (attachment lock
        held).

        With ``held`` (a DEL in the agent) the mode may defer its slow tail: the VF lock is then
        left on ``held`` and the tail (the mode's rest, then the record's removal) is returned
        for the caller to run after the reply; None when everything is done."""
        with contextlib.ExitStack() as locked:
            locked.enter_context(self._device_lock(state, record.device_id))
            if state.path_of(*record.key).exists():  # a reclaim may have changed it meanwhile
                record = recovery.load_or_quarantine(state, args) or record
            deferred: list[Callable[[], None]] = []
            ctx = self._ctx(args, conf, record=record, device_id=record.device_id,
                            defer=deferred.append if held is not None else None)
            # the mode releases IPAM first; on error the record stays so a retry can finish
            with trace.step(f"{record.mode}.delete"):
                load_mode(str(record.mode)).delete(ctx)
            if deferred and held is not None:
                held.push(locked.pop_all())
                key = record.key

                def tail() -> None:
                    for step in deferred:
                        step()
                    state.delete(*key)

                return tail
            with trace.step("record.delete"):
                state.delete(*record.key)
        return None

    def finish_pending(self) -> int:
        """Finish every DEL whose deferred tail did not run (the agent was killed after the
        reply): restore the VF or delete the fallback link, drop the record. Run by the agent
        at start; returns how many."""
        records, _ = self.state.list_attachments()
        done = 0
        for record in records:
            if not record.del_pending:
                continue
            args = CmdArgs(command=Command.DEL, container_id=record.container_id,
                           netns=recovery.trusted_netns(record.netns, record),
                           ifname=record.ifname)
            try:
                conf = NetConf.parse(record.netconf.encode(), args)
                with self._attachment_lock(self.state, args):
                    current = recovery.load_or_quarantine(self.state, args)
                    if current is None or not current.del_pending:
                        continue  # another worker finished it meanwhile
                    self._remove(self.state, args, conf, current)
                done += 1
                log.info("finished the deferred DEL of %s/%s", *record.key)
            except Exception as e:
                log.error("cannot finish the deferred DEL of %s/%s: %s", *record.key,
                          from_exception(e))
        return done

    def check(self, args: CmdArgs, conf: NetConf) -> None:
        if conf.prev_result is None:
            raise CniError(CniCode.INVALID_CONFIG, "required prevResult missing")
        state = self._store(conf)
        with self._attachment_lock(state, args):
            record = recovery.load_or_quarantine(state, args)
            if record is None:
                raise CniError(
                    CniCode.UNKNOWN_CONTAINER,
                    f"no attachment {args.container_id}/{args.ifname} on this node",
                )
            ctx = self._ctx(args, conf, record=record, device_id=record.device_id)
            load_mode(str(record.mode)).check(ctx)  # IPAM CHECK included

    def gc(self, args: CmdArgs, conf: NetConf) -> None:
        """Remove attachments of this network that are not in ``cni.dev/valid-attachments``.

        For each: mode cleanup (netns may be gone), IPAM release, record removal. Damaged
        records are quarantined (their VF recovered from its owner record); temporary files of
        dead writers and old tombstones go. Continues past errors, forwards GC to the IPAM
        delegate, then reports every failure in one error.
        """
        state = self._store(conf)
        state.sweep_tmp()
        state.prune_tombstones()
        state.sweep_attachment_locks()
        valid = {(a.container_id, a.ifname) for a in conf.valid_attachments or ()}
        failures: list[CniError] = []
        for record, recovered in recovery.gc_candidates(state, conf, self.netlink_factory):
            if record.key in valid:
                continue
            cid, ifname = record.key
            log.info("GC: removing stale attachment %s/%s (mode %s)", cid, ifname, record.mode)
            stale_args = dataclasses.replace(
                args, container_id=cid, ifname=ifname,
                netns=recovery.trusted_netns("", record),
            )
            try:
                with self._attachment_lock(state, stale_args):
                    if not (recovery.still_owned(state, record) if recovered
                            else state.path_of(cid, ifname).exists()):
                        continue  # its DEL finished while we waited for the lock
                    self._remove(state, stale_args, conf, record)
            except Exception as e:
                err = from_exception(e)
                log.error("GC of %s/%s failed: %s", cid, ifname, err)
                failures.append(err)
        try:
            self.ipam_factory(conf, args).gc(conf, args)
        except Exception as e:
            failures.append(from_exception(e))
        if failures:
            raise CniError(
                failures[0].code,
                f"GC: {len(failures)} cleanup step(s) failed",
                "; ".join(str(f) for f in failures)[:2000],
            )

    def status(self, args: CmdArgs, conf: NetConf) -> None:
        """Ready iff the expected VF / fallback master exists and the IPAM delegate is ready.

        A config with neither ``deviceID`` (Multus injects it per pod) nor ``fallback`` needs at
        least one SR-IOV PF on this node.
        """
        missing = []
        if conf.device_id is not None:
            dev = self.sysfs_root / "sys/bus/pci/devices" / conf.device_id
            if not dev.exists():
                missing.append(f"VF {conf.device_id}")
        elif conf.fallback is None:
            from sriov.errors import SysfsError
            from sriov.sysfs import SysfsReader  # sysfs only: no netlink needed to count PFs

            try:
                pfs = SysfsReader(self.sysfs_root).inventory().pfs
            except SysfsError as e:
                log.warning("STATUS: cannot list PCI devices: %s", e)
                pfs = ()
            if not pfs:
                missing.append("SR-IOV PFs (none on this node)")
        fallback = conf.fallback
        if (
            fallback is not None
            and not (self.sysfs_root / "sys/class/net" / fallback.master).exists()
        ):
            missing.append(f"fallback master {fallback.master}")
        if missing:
            raise CniError(
                CniCode.NOT_AVAILABLE, "plugin not available", "missing: " + ", ".join(missing)
            )
        try:
            self.ipam_factory(conf, args).status(conf, args)
        except CniError as e:
            raise CniError(
                CniCode.NOT_AVAILABLE, f"IPAM {conf.ipam_type} not available: {e.msg}", e.details
            ) from e


def _locked_tail(tail: Callable[[], None], locks: contextlib.ExitStack, args: CmdArgs
                 ) -> Callable[[], None]:
    """A DEL's deferred tail, run after the reply with the attachment and VF locks it still
    holds: released when it ends. A failure leaves the record (marked ``del_pending``) for the
    next agent start, ADD of the VF or GC to finish."""
    def run() -> None:
        with locks:
            try:
                tail()
            except Exception as e:
                log.error("deferred DEL of %s/%s failed: %s (left for the next agent start, "
                          "GC or ADD of the VF)", args.container_id, args.ifname,
                          from_exception(e))

    return run
