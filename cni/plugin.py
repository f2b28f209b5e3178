"""Verb handlers: pick an attachment mode, keep the state store, run GC and STATUS.

Modes (VF, DPDK, fallback) live in their own modules and implement :class:`cni.mode.Mode`
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cni import trace
from cni.errors import CniCode, CniError, from_exception
from cni.ipam import IpamRunner
from cni.mode import AttachmentContext, Mode, require_netns
from cni.netconf import NetConf
from cni.protocol import CURRENT_VERSION, CmdArgs, Result
from cni.state import StateStore
from sriov.types import PciAddress

__all__ = ["MODE_REGISTRY", "AttachmentContext", "Mode", "Plugin", "load_mode", "register_mode",
           "require_netns"]
log = logging.getLogger(__name__)


MODE_REGISTRY: dict[str, str] = {
    "vf": "cni.vf:VfMode",
    "dpdk": "cni.vf:DpdkMode",
    "fallback": "cni.fallback:FallbackMode",
}
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
"""Tells ``vf`` or ``dpdk`` for a VF (raises DeviceNotFoundError when it is neither)."""
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
        self.faults: Callable[[str], None] = lambda step: None
        """Handed to every :class:`AttachmentContext` (tests inject failures at named steps)."""

    # ---------------------------------------------------------------- helpers
    def _store(self, conf: NetConf) -> StateStore:
        return StateStore(Path(conf.state_dir)) if conf.state_dir else self.state

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
        from sriov.errors import DeviceNotFoundError
        from sriov.sysfs import SysfsReader
        from sriov.types import DriverKind

        # the driver link is all it needs and is always current: the plain reader, not the
        # host's (which on an emulated host first re-syncs the VF's netdev entry)
        vf = SysfsReader(self.sysfs_root).vf(device)
        if vf.driver_kind not in (DriverKind.VFIO, DriverKind.UIO, DriverKind.KERNEL):
            vf = self.host_factory().sysfs.vf(device)  # unknown driver: does it have a netdev?
        if vf.driver_kind in (DriverKind.VFIO, DriverKind.UIO):
            return "dpdk"
        if vf.netdev or vf.driver_kind is DriverKind.KERNEL:
            return "vf"  # no netdev in the host: maybe in a pod; the VF mode tells busy/stale
        raise DeviceNotFoundError(
            "VF netdev", device, "VF has neither a netdev nor a DPDK driver bound"
        )

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

        Held around a whole verb - mode work, IPAM and the attachment record - so a DEL racing an
        ADD on the same VF sees either nothing or the complete attachment, never a half of it.
        """
        return state.vf_lock(device) if device else contextlib.nullcontext()

    def add(self, args: CmdArgs, conf: NetConf) -> Result:
        state = self._store(conf)
        mode_name, device = self.select_mode(args, conf, state)
        with self._device_lock(state, device):
            if state.load(args.container_id, args.ifname) is not None:
                raise CniError(
                    CniCode.ATTACHMENT_EXISTS,
                    f"attachment {args.container_id}/{args.ifname} already exists",
                    "the runtime must DEL it before adding it again",
                )
            ctx = self._ctx(args, conf, device_id=device)
            mode = load_mode(mode_name)
            log.info("ADD mode=%s device=%s", mode_name, device or "-")
            with trace.step(f"{mode_name}.add"):
                result = mode.add(ctx)
            record = {
                **ctx.record,
                "mode": mode_name,
                "network": conf.name,
                "netns": args.netns,
                "deviceID": device,
                "netconf": conf.raw.decode(errors="replace"),
                "result": result.to_dict(CURRENT_VERSION),
            }
            try:
                state.save(args.container_id, args.ifname, record)
            except OSError as e:
                log.error("cannot save attachment record: %s; rolling back", e)
                self._undo(mode, dataclasses.replace(ctx, record=record))
                with contextlib.suppress(OSError):  # the mode's pending record, if it wrote one
                    state.delete(args.container_id, args.ifname)
                raise CniError(CniCode.STATE, "cannot save attachment state", str(e)) from e
            return result

    @staticmethod
    def _undo(mode: Mode, ctx: AttachmentContext) -> None:
        try:
            mode.delete(ctx)  # IPAM DEL included
        except Exception as e:
            log.error("rollback failed: %s", from_exception(e))

    def delete(self, args: CmdArgs, conf: NetConf) -> None:
        state = self._store(conf)
        seen = state.load(args.container_id, args.ifname)
        device = (seen or {}).get("deviceID") or conf.device_id
        with self._device_lock(state, device):
            record = state.load(args.container_id, args.ifname)  # again: an ADD may have finished
            found = record or {}
            ctx = self._ctx(args, conf, record=found, device_id=found.get("deviceID"))
            if record is None:
                # nothing of ours to undo (double DEL, or ADD failed and rolled back); still
                # release IPAM so a reservation can never leak, but never fail the DEL for it
                try:
                    ctx.ipam.delete(conf, args)
                except Exception as e:
                    log.warning(
                        "DEL without attachment record: IPAM release failed: %s", from_exception(e)
                    )
                return
            # the mode releases IPAM first; on error the record stays so a retry can finish
            with trace.step(f"{record['mode']}.delete"):
                load_mode(record["mode"]).delete(ctx)
            state.delete(args.container_id, args.ifname)

    def check(self, args: CmdArgs, conf: NetConf) -> None:
        if conf.prev_result is None:
            raise CniError(CniCode.INVALID_CONFIG, "required prevResult missing")
        state = self._store(conf)
        record = state.load(args.container_id, args.ifname)
        if record is None:
            raise CniError(
                CniCode.UNKNOWN_CONTAINER,
                f"no attachment {args.container_id}/{args.ifname} on this node",
            )
        ctx = self._ctx(args, conf, record=record, device_id=record.get("deviceID"))
        load_mode(record["mode"]).check(ctx)  # IPAM CHECK included

    def gc(self, args: CmdArgs, conf: NetConf) -> None:
        """Remove attachments of this network that are not in ``cni.dev/valid-attachments``.

        For each: mode cleanup (netns may be gone), IPAM release, record removal. Continues past
        errors, forwards GC to the IPAM delegate, then reports every failure in one error.
        """
        state = self._store(conf)
        valid = {(a.container_id, a.ifname) for a in conf.valid_attachments or ()}
        failures: list[CniError] = []
        for cid, ifname, record in state.list_attachments():
            if record.get("network") != conf.name or (cid, ifname) in valid:
                continue
            log.info(
                "GC: removing stale attachment %s/%s (mode %s)", cid, ifname, record.get("mode")
            )
            stale_args = dataclasses.replace(
                args, container_id=cid, ifname=ifname, netns=str(record.get("netns") or "")
            )
            try:
                with self._device_lock(state, record.get("deviceID")):
                    if state.load(cid, ifname) is None:
                        continue  # its DEL finished while we waited for the VF lock
                    device = record.get("deviceID")
                    ctx = self._ctx(stale_args, conf, record=record, device_id=device)
                    load_mode(str(record.get("mode"))).delete(ctx)  # IPAM DEL included
                    state.delete(cid, ifname)
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
