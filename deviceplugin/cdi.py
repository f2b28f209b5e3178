"""CDI (Container Device Interface) spec files, one per pool (``--use-cdi``).

``<cdi-dir>/sriov-k8s-<prefix>_<name>.json``: ``cdiVersion`` 0.6.0, ``kind``
``<prefix>/net-pci``, one device per VF named by its PCI address, so the Allocate
answer's ``cdi_devices`` ``<prefix>/net-pci=<pci>`` resolve. vfio-pci VFs carry
the device nodes ``/dev/vfio/vfio`` and ``/dev/vfio/<group>``; every device sets
``PCIDEVICE_<PREFIX>_<NAME>_<PCI>=<pci>`` (CDI refuses devices without edits).
Files are rewritten only when a pool's VFs change (not on health flips) and are
removed when the pool goes away and at shutdown.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from deviceplugin.allocation import VFIO_CONTAINER, env_name
from deviceplugin.files import write_atomic
from deviceplugin.pool import PoolDevice, PoolSpec
from deviceplugin.registry import PoolState
from sriov.types import DriverKind, VirtualFunction

log = logging.getLogger(__name__)

CDI_VERSION = "0.6.0"
CDI_CLASS = "net-pci"
DEFAULT_CDI_DIR = Path("/var/run/cdi")
FILE_PREFIX = "sriov-k8s-"


def cdi_kind(prefix: str) -> str:
    return f"{prefix}/{CDI_CLASS}"


def spec_file_name(full_name: str) -> str:
    """``intel.com/sriov_net`` -> ``sriov-k8s-intel.com_sriov_net.json``."""
    return f"{FILE_PREFIX}{full_name.replace('/', '_')}.json"


def _device_edits(spec: PoolSpec, device: PoolDevice) -> dict[str, Any]:
    pci = device.id
    env = f"{env_name(spec.full_name)}_{re.sub(r'[:.]', '_', pci.upper())}={pci}"
    edits: dict[str, Any] = {"env": [env]}
    vf = device.vf
    if vf.driver_kind is DriverKind.VFIO and vf.iommu_group is not None:
        edits["deviceNodes"] = [{"path": VFIO_CONTAINER},
                                {"path": f"/dev/vfio/{vf.iommu_group}"}]
    return edits


def cdi_spec(spec: PoolSpec, devices: Sequence[PoolDevice]) -> dict[str, Any]:
    """The CDI spec document of one pool. Pure."""
    return {
        "cdiVersion": CDI_VERSION,
        "kind": cdi_kind(spec.prefix),
        "devices": [{"name": d.id, "containerEdits": _device_edits(spec, d)} for d in devices],
    }


class CdiSpecWriter:
    """Keeps ``<cdi_dir>/sriov-k8s-*.json`` in step with the pools (a registry listener)."""

    def __init__(self, cdi_dir: Path) -> None:
        self.cdi_dir = cdi_dir
        self._written: dict[str, tuple[tuple[VirtualFunction, ...], Path]] = {}

    def remove_stale(self) -> None:
        """At start: files a previous run left behind (it may have been killed)."""
        for path in self.cdi_dir.glob(f"{FILE_PREFIX}*.json"):
            log.info("removing stale CDI spec path=%s", path)
            path.unlink(missing_ok=True)

    def update(self, pools: Mapping[str, PoolState]) -> None:
        for name in sorted(set(self._written) - set(pools)):
            self._remove(name)
        for name, pool in pools.items():
            vfs = tuple(d.vf for d in pool.devices)
            previous = self._written.get(name)
            if previous is not None and previous[0] == vfs:
                continue  # health flips do not change the spec
            path = self.cdi_dir / spec_file_name(name)
            write_atomic(path, json.dumps(cdi_spec(pool.spec, pool.devices), indent=1) + "\n")
            self._written[name] = (vfs, path)
            log.info("CDI spec written resource=%s devices=%s path=%s", name, len(vfs), path)

    def remove_all(self) -> None:
        for name in list(self._written):
            self._remove(name)

    def _remove(self, name: str) -> None:
        _, path = self._written.pop(name)
        path.unlink(missing_ok=True)
        log.info("CDI spec removed resource=%s path=%s", name, path)

