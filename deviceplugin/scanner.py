"""HostScanner: config file + inventory + selection + health -> per-pool device lists.

Called by the DeviceRegistry on every rescan. Re-reads the config only when its
bytes changed; an invalid new config is logged, counted, and the previous pools
are kept (upstream exits or ignores it instead).
"""

from __future__ import annotations

import errno
import functools
import logging
from collections.abc import Callable, Mapping
from pathlib import Path

from deviceplugin.pool import PoolSpec, build_devices
from deviceplugin.registry import PoolState
from sriov.errors import PoolConfigError
from sriov.pools import PoolConfig, ResourcePool, parse_pool_config, select
from sriov.types import IfName, Inventory, VirtualFunction

log = logging.getLogger(__name__)


def pool_spec(pool: ResourcePool) -> PoolSpec:
    return PoolSpec(
        prefix=pool.resource_prefix,
        name=pool.resource_name,
        device_type=str(pool.device_type),
        exclude_topology=pool.exclude_topology,
        need_vhost_net=pool.need_vhost_net,
        is_rdma=pool.is_rdma,
        additional_info={k: dict(v) for k, v in pool.additional_info.items()},
    )


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
                 on_invalid: Callable[[PoolConfigError], None] = lambda e: None) -> None:
        self.path = path
        self._default_prefix = default_prefix
        self._on_invalid = on_invalid
        self._last_bytes: bytes | None = None
        self.config: PoolConfig | None = None
        self.last_error: PoolConfigError | None = None

    def load_initial(self) -> PoolConfig:
        """First load: errors propagate (the CLI exits non-zero)."""
        try:
            data = self.path.read_bytes()
        except OSError as e:
            raise PoolConfigError(str(self.path), f"cannot read: {e.strerror or e}") from e
        self.config = parse_pool_config(data, default_prefix=self._default_prefix)
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
                self.config = parse_pool_config(data, default_prefix=self._default_prefix)
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


class HostScanner:
    def __init__(self, config: ConfigFile, inventory: Callable[[], Inventory],
                 carrier: Callable[[IfName], bool | None]) -> None:
        self._config = config
        self._inventory = inventory
        self._carrier = carrier
        self.last_inventory: Inventory | None = None
        self._last_selection: dict[str, tuple[PoolSpec, tuple[VirtualFunction, ...]]] = {}

    def __call__(self) -> Mapping[str, PoolState]:
        """Full rescan: config, inventory, selection, health."""
        config = self._config.current()
        inventory = self._inventory()
        self.last_inventory = inventory
        selection = select(config, inventory)
        self._last_selection = {
            pool.full_name: (pool_spec(pool), selection.pools.get(pool.full_name, ()))
            for pool in config.pools}
        return self.health_only()

    def health_only(self) -> Mapping[str, PoolState]:
        """Recompute health of the last selection (one carrier read per PF netdev)."""
        carrier = functools.cache(self._carrier)
        return {name: PoolState(spec=spec, devices=build_devices(spec, vfs, carrier))
                for name, (spec, vfs) in self._last_selection.items()}
