"""Only VFs of the device plugin's pools: the CNI's check that a deviceID is *managed*.

Without a pool config the CNI accepts any VF of the node (any VF of any SR-IOV PF). With one
(``sriov-cni-agent --pool-config``, ``SRIOV_CNI_POOL_CONFIG``, or the device plugin's own
``--config`` for the embedded agent), ADD takes a VF only if a pool of that config selects it,
by the same rules as the device plugin (:func:`sriov.pools.select`: first matching pool wins).

The config is re-read when its file changes (stat key: inode, size, mtime - a ConfigMap update
swaps a symlink, which changes the inode). An unreadable or invalid config fails closed: every
ADD with a deviceID is refused (code 50) until the file is fixed. The check reads sysfs only.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from cni.errors import CniCode, CniError
from sriov.errors import PoolConfigError
from sriov.types import DeviceClass, Inventory, PciAddress, VirtualFunction

if TYPE_CHECKING:  # sriov.pools is imported on first use: standalone runs without it stay fast
    from sriov.pools import PoolConfig

log = logging.getLogger(__name__)

POOL_CONFIG_ENV = "SRIOV_CNI_POOL_CONFIG"
"""Standalone mode's pool config path (the agent's ``--pool-config`` default)."""

VfReader = Callable[[PciAddress], VirtualFunction]
"""Reads one VF from sysfs; raises :class:`sriov.errors.DeviceNotFoundError` for a non-VF."""

_StatKey = tuple[int, int, int, int]


def pool_config_from_env(value: str | None) -> Path | None:
    """The configured path, or None (unset/blank: any VF of the node is accepted)."""
    return Path(value) if value and value.strip() else None


class PoolGuard:
    """Refuses a deviceID whose VF no pool of the config at ``path`` selects."""

    def __init__(self, path: Path, read_vf: VfReader) -> None:
        self.path = Path(path)
        self.read_vf = read_vf
        self._lock = threading.Lock()
        self._key: _StatKey | None = None
        self._cached: PoolConfig | PoolConfigError | None = None

    def _stat_key(self) -> _StatKey | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None  # load_pool_config reports why
        return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)

    def config(self) -> PoolConfig:
        """The current config (cached per file version); :class:`CniError` 50 when unusable."""
        from sriov.pools import load_pool_config

        key = self._stat_key()
        with self._lock:
            if key is None or key != self._key or self._cached is None:
                try:
                    self._cached = load_pool_config(self.path)
                    log.info(
                        "pool config %s loaded: %s pool(s)", self.path, len(self._cached.pools)
                    )
                except PoolConfigError as e:
                    log.error("pool config %s is unusable: %s", self.path, e)
                    self._cached = e
                self._key = key
            cached = self._cached
        if isinstance(cached, PoolConfigError):
            raise CniError(
                CniCode.NOT_AVAILABLE,
                f"pool config {self.path} is unusable; no VF is handed out until it is fixed",
                str(cached)[:2000],
            )
        return cached

    def check(self, device: PciAddress) -> None:
        """Return if a pool selects the VF ``device``; raise :class:`CniError` otherwise.

        Any pool device the CNI can attach (a VF, a NIC without SR-IOV); a deviceID that is
        none (a PF with VFs, a missing device) raises the sysfs reader's
        :class:`sriov.errors.DeviceNotFoundError` (code 100) as without a pool config.
        """
        from sriov.pools import select

        config = self.config()
        vf = self.read_vf(device)
        inventory = (Inventory(pfs=(), vfs=(vf,)) if vf.device_class is DeviceClass.VF
                     else Inventory(pfs=(), vfs=(), others=(vf,)))  # a NIC: pooled like one
        selection = select(config, inventory)
        pool = selection.pool_of(vf.address)
        if pool is not None:
            log.debug("deviceID %s is in pool %s", vf.address, pool)
            return
        names = ", ".join(p.resource_name for p in config.pools) or "none"
        raise CniError(
            CniCode.DEVICE_NOT_FOUND,
            f"deviceID {vf.address} ({_describe(vf)}) "
            f"is not in any pool of {self.path} (pools: {names})",
            selection.reasons.get(vf.address, "")[:2000],
        )


def _describe(device: VirtualFunction) -> str:
    if device.index >= 0 and device.pf_address != device.address:
        return f"VF {device.index} of PF {device.pf_netdev or device.pf_address}"
    return f"{device.device_class.value} {device.netdev or device.address}"
