"""HostScanner: config file + inventory + selection + health -> per-pool device lists.

Called by the DeviceRegistry on every rescan. Re-reads the config only when its
bytes changed; an invalid new config is logged, counted, and the previous pools
are kept (upstream exits or ignores it instead).
"""

from __future__ import annotations

import dataclasses
import errno
import functools
import logging
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from deviceplugin.pool import Health, PoolDevice, PoolSpec, build_devices
from deviceplugin.registry import DeviceRegistry, PoolState
from sriov.ddp import DdpProbe, with_ddp_profiles
from sriov.devclass import AllocOptions
from sriov.errors import PoolConfigError
from sriov.netlink_devlink import with_devlink_rdma
from sriov.pools import PoolConfig, ResourcePool, Selection, parse_pool_config, select
from sriov.types import IfName, Inventory, VirtualFunction

log = logging.getLogger(__name__)

CONFIGMAP_DATA = "..data"
SAFETY_FULL_EVERY = 10
"""The safety timer does an unconditional full rescan every this many ticks (5 min)."""


def pool_spec(pool: ResourcePool) -> PoolSpec:
    return PoolSpec(
        prefix=pool.resource_prefix,
        name=pool.resource_name,
        device_type=str(pool.device_type),
        exclude_topology=pool.exclude_topology,
        is_rdma=pool.is_rdma,
        additional_info={k: dict(v) for k, v in pool.additional_info.items()},
    )


def selector_options(config: PoolConfig, selection: Selection) -> dict[str, AllocOptions]:
    """Device ID -> the Allocate options of the selector object that claimed it."""
    found: dict[str, AllocOptions] = {}
    for device_id in selection.claimed_by:
        selector = selection.selector(config, device_id)
        if selector is not None:
            found[device_id] = AllocOptions(
                is_rdma=selector.is_rdma, need_vhost_net=selector.need_vhost_net,
                vdpa_type=str(selector.vdpa_type) if selector.vdpa_type else None)
    return found


class SysfsCarrier:
    """Reads ``<root>/sys/class/net/<if>/carrier`` (works for real and emulated trees)."""

    def __init__(self, root: Path) -> None:
        self._net = root / "sys/class/net"

    def __call__(self, ifname: IfName) -> bool | None:
        try:
            return (self._net / ifname / "carrier").read_text().strip() == "1"
        except OSError as e:
            if e.errno == errno.EINVAL:  # the kernel's answer while the link is admin down
                return False
            return None


class ConfigFile:
    """The pool config file, re-parsed only when its content changes."""

    def __init__(self, path: Path, default_prefix: str,
                 on_invalid: Callable[[PoolConfigError], None] = lambda e: None, *,
                 strict: bool = False) -> None:
        self.path = path
        self._default_prefix = default_prefix
        self._strict = strict
        self._on_invalid = on_invalid
        self._last_bytes: bytes | None = None
        self.config: PoolConfig | None = None
        self.last_error: PoolConfigError | None = None

    def affected_by(self, names: Iterable[str]) -> bool:
        """Whether changes to these entries of the config's directory can change the config:
        the file itself or a ConfigMap ``..data`` symlink swap (not, e.g., a device-info dir
        created next to it, which would otherwise cost a full rescan)."""
        return any(name in (self.path.name, CONFIGMAP_DATA) for name in names)

    def load_initial(self) -> PoolConfig:
        """First load: errors propagate (the CLI exits non-zero)."""
        try:
            data = self.path.read_bytes()
        except OSError as e:
            raise PoolConfigError(str(self.path), f"cannot read: {e.strerror or e}") from e
        self.config = parse_pool_config(data, default_prefix=self._default_prefix,
                                        strict=self._strict)
        self._last_bytes = data
        return self.config

    def current(self) -> PoolConfig:
        """The newest valid config; keeps the previous one when the file became invalid."""
        assert self.config is not None, "load_initial() first"
        error: PoolConfigError | None = None
        data: bytes | None
        try:
            data = self.path.read_bytes()
        except OSError as e:
            data = None
            error = PoolConfigError(
                str(self.path), f"cannot read: {e.strerror or e}")
        if data is not None and data == self._last_bytes:
            return self.config
        if data is not None:
            try:
                self.config = parse_pool_config(data, default_prefix=self._default_prefix,
                                        strict=self._strict)
                self._last_bytes = data
                self.last_error = None
                log.info("config reloaded path=%s pools=%s", self.path,
                         ",".join(p.full_name for p in self.config.pools))
                return self.config
            except PoolConfigError as e:
                error = e
            self._last_bytes = data  # report each bad version once
        if error is not None and str(error) != str(self.last_error):
            log.error("config rejected, keeping previous pools path=%s error=%s", self.path, error)
            self.last_error = error
            self._on_invalid(error)
        return self.config


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class _PoolHealth:
    """A pool's last state plus, per PF netdev, the positions of its VFs and their health."""

    state: PoolState
    positions: dict[IfName, tuple[int, ...]]
    health: dict[IfName, Health]


class HostScanner:
    """``scanner()`` is the full rescan, ``scanner.health_only()`` the carrier-flip path.

    The health path is incremental: one carrier read per PF netdev, and only the
    devices of PFs whose health changed are rebuilt; an unchanged pool is returned
    as the very same ``PoolState`` object, so comparing and re-encoding it is free.
    """

    def __init__(self, config: ConfigFile, inventory: Callable[[], Inventory],
                 carrier: Callable[[IfName], bool | None],
                 fingerprint: Callable[[], object] | None = None,
                 full_every: int = SAFETY_FULL_EVERY, ddp: DdpProbe | None = None,
                 devlink_rdma: Callable[[], frozenset[str]] | None = None) -> None:
        """``devlink_rdma``: devlink handles with ``enable_rdma`` true
        (:class:`sriov.netlink_devlink.DevlinkRdma`), asked when a pool uses ``isRdma``."""
        self._config = config
        self._inventory = inventory
        self._carrier = carrier
        self._fingerprint = fingerprint
        self._ddp = ddp
        self._devlink_rdma = devlink_rdma
        self._warned_no_ddp = False
        self._last_fingerprint: object = None
        self._last_config: PoolConfig | None = None
        self._full_every = full_every
        self._ticks = 0
        self.last_inventory: Inventory | None = None
        self._last_selection: dict[str, tuple[PoolSpec, tuple[VirtualFunction, ...]]] = {}
        self._pools: dict[str, _PoolHealth] = {}

    def __call__(self) -> Mapping[str, PoolState]:
        """Full rescan: config, inventory, selection, health."""
        config = self._config.current()
        self._last_config = config
        if self._fingerprint is not None:
            self._last_fingerprint = self._fingerprint()  # before: a change during the scan
        inventory = self._inventory()                      # shows up at the next check
        if any(s.ddp_profiles for p in config.pools for s in p.selectors):
            inventory = self._with_ddp(inventory)
        if self._devlink_rdma is not None and any(p.is_rdma for p in config.pools):
            inventory = with_devlink_rdma(inventory, self._devlink_rdma())
        self.last_inventory = inventory
        selection = select(config, inventory)
        self._last_selection = {
            pool.full_name: (pool_spec(pool), selection.pools.get(pool.full_name, ()))
            for pool in config.pools}
        options = selector_options(config, selection)
        carrier = functools.cache(self._carrier)
        self._pools = {
            name: _index(PoolState(spec=spec, devices=build_devices(spec, vfs, carrier, options)))
            for name, (spec, vfs) in self._last_selection.items()}
        return {name: p.state for name, p in self._pools.items()}

    def _with_ddp(self, inventory: Inventory) -> Inventory:
        """DDP profiles are read only when a pool selects by them (upstream does the same)."""
        if self._ddp is None:
            if not self._warned_no_ddp:
                log.warning("a pool selects by ddpProfiles but ddptool is not on PATH; "
                            "no device will match")
                self._warned_no_ddp = True
            return inventory
        return with_ddp_profiles(inventory, self._ddp)

    def safety(self) -> Mapping[str, PoolState]:
        """The safety timer's pass: a full rescan only if the config or the host's device
        structure changed (or every ``full_every``-th tick, or without a fingerprint);
        otherwise just the health pass."""
        self._ticks += 1
        if self._fingerprint is None or self._ticks % self._full_every == 0:
            return self()
        if (self._config.current() is not self._last_config
                or self._fingerprint() != self._last_fingerprint):
            log.info("safety check found a change the events missed; full rescan")
            return self()
        return self.health_only()

    def health_only(self) -> Mapping[str, PoolState]:
        """Recompute health of the last selection: one carrier read per PF netdev."""
        carrier = functools.cache(self._carrier)
        for name, pool in list(self._pools.items()):
            changed = {pf: health for pf in pool.positions
                       if (health := _pf_health(pf, carrier)) is not pool.health[pf]}
            if changed:
                self._pools[name] = _rebuild(pool, changed)
        return {name: p.state for name, p in self._pools.items()}


def _pf_health(pf: IfName, carrier: Callable[[IfName], bool | None]) -> Health:
    return Health.UNHEALTHY if carrier(pf) is False else Health.HEALTHY


def _index(state: PoolState) -> _PoolHealth:
    positions: dict[IfName, list[int]] = {}
    health: dict[IfName, Health] = {}
    for i, device in enumerate(state.devices):
        pf = device.vf.pf_netdev
        if pf is not None:
            positions.setdefault(pf, []).append(i)
            health[pf] = device.health
    return _PoolHealth(state=state, positions={pf: tuple(p) for pf, p in positions.items()},
                       health=health)


def _rebuild(pool: _PoolHealth, changed: Mapping[IfName, Health]) -> _PoolHealth:
    """A new state where only the devices of the PFs in ``changed`` got their new health."""
    devices: list[PoolDevice] = list(pool.state.devices)
    for pf, health in changed.items():
        for i in pool.positions[pf]:
            devices[i] = dataclasses.replace(devices[i], health=health)
    index = dict(pool.state.index)
    index.update((devices[i].id, devices[i]) for pf in changed for i in pool.positions[pf])
    log.info("health changed resource=%s %s", pool.state.spec.full_name,
             " ".join(f"{pf}={h}" for pf, h in sorted(changed.items())))
    state = PoolState(spec=pool.state.spec, devices=tuple(devices), index=index)
    return _PoolHealth(state=state, positions=pool.positions,
                       health={**pool.health, **changed})


def registry_for(scanner: HostScanner, *, safety_interval_s: float) -> DeviceRegistry:
    """The registry wired to both scan paths (full and health-only)."""
    return DeviceRegistry(scanner, health_scan=scanner.health_only,
                          safety_scan=scanner.safety, safety_interval_s=safety_interval_s)
