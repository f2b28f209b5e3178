"""CDI (Container Device Interface) spec files, one per pool (``--use-cdi``).

``<cdi-dir>/sriov-k8s-<prefix>_<name>.json``: ``cdiVersion`` 0.6.0, ``kind``
``<prefix>/net-pci`` (``net-accel`` for accelerator, ``net-sf`` for auxNetDevice pools,
as upstream), one device per pool device named by its ID, so the Allocate answer's
``cdi_devices`` ``<kind>=<id>`` resolve. Each device carries the nodes its classes give
it (:mod:`sriov.devclass`: vfio, uio, RDMA, vDPA, vhost-net; ``path``, ``hostPath`` and
``permissions`` as upstream writes them; the paths differ for vfio no-IOMMU); every
device sets ``PCIDEVICE_<PREFIX>_<NAME>_<ID>=<id>`` (CDI refuses devices without edits).
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

from deviceplugin.allocation import CDI_CLASS_OF_TYPE, env_name
from deviceplugin.files import write_atomic
from deviceplugin.pool import PoolDevice, PoolSpec
from deviceplugin.registry import PoolState
from sriov import devclass
from sriov.devclass import DEFAULT_DEV_ROOT, DeviceNode
from sriov.types import VirtualFunction

log = logging.getLogger(__name__)

CDI_VERSION = "0.6.0"
CDI_CLASS = "net-pci"
DEFAULT_CDI_DIR = Path("/var/run/cdi")
FILE_PREFIX = "sriov-k8s-"


def cdi_kind(prefix: str, device_type: str = "netDevice") -> str:
    return f"{prefix}/{CDI_CLASS_OF_TYPE.get(device_type, CDI_CLASS)}"


def spec_file_name(full_name: str) -> str:
    """``intel.com/sriov_net`` -> ``sriov-k8s-intel.com_sriov_net.json``."""
    return f"{FILE_PREFIX}{full_name.replace('/', '_')}.json"


def _device_edits(spec: PoolSpec, device: PoolDevice, dev_root: Path | None) -> dict[str, Any]:
    device_id = device.id
    env = f"{env_name(spec.full_name)}_{re.sub(r'[:.-]', '_', device_id.upper())}={device_id}"
    edits: dict[str, Any] = {"env": [env]}
    nodes = devclass.allocate(device.vf, device.options,
                             devclass.under(dev_root) if dev_root else lambda _: True).nodes
    if nodes:
        edits["deviceNodes"] = [_node(n) for n in nodes]
    return edits


def _node(node: DeviceNode) -> dict[str, str]:
    """As upstream writes it: container path, host path and permissions, always."""
    return {"path": node.container_path, "hostPath": node.host_path,
            "permissions": node.permissions}


def cdi_spec(spec: PoolSpec, devices: Sequence[PoolDevice],
             dev_root: Path | None = None) -> dict[str, Any]:
    """The CDI spec document of one pool; nodes checked under ``dev_root`` (``None``: all
    trusted, pure)."""
    return {
        "cdiVersion": CDI_VERSION,
        "kind": cdi_kind(spec.prefix, spec.device_type),
        "devices": [{"name": d.id, "containerEdits": _device_edits(spec, d, dev_root)}
                    for d in devices],
    }


class CdiSpecWriter:
    """Keeps ``<cdi_dir>/sriov-k8s-*.json`` in step with the pools (a registry listener)."""

    def __init__(self, cdi_dir: Path, dev_root: Path = DEFAULT_DEV_ROOT) -> None:
        self.cdi_dir = cdi_dir
        self.dev_root = dev_root
        self._written: dict[str, tuple[tuple[tuple[VirtualFunction, object], ...], Path]] = {}

    def remove_stale(self) -> None:
        """At start: files a previous run left behind (it may have been killed)."""
        for path in self.cdi_dir.glob(f"{FILE_PREFIX}*.json"):
            log.info("removing stale CDI spec path=%s", path)
            path.unlink(missing_ok=True)

    def update(self, pools: Mapping[str, PoolState]) -> None:
        for name in sorted(set(self._written) - set(pools)):
            self._remove(name)
        for name, pool in pools.items():
            vfs = tuple((d.vf, d.options) for d in pool.devices)
            previous = self._written.get(name)
            if previous is not None and previous[0] == vfs:
                continue  # health flips do not change the spec
            path = self.cdi_dir / spec_file_name(name)
            document = cdi_spec(pool.spec, pool.devices, self.dev_root)
            write_atomic(path, json.dumps(document, indent=1) + "\n")
            self._written[name] = (vfs, path)
            log.info("CDI spec written resource=%s devices=%s path=%s", name, len(vfs), path)

    def remove_all(self) -> None:
        for name in list(self._written):
            self._remove(name)

    def _remove(self, name: str) -> None:
        _, path = self._written.pop(name)
        path.unlink(missing_ok=True)
        log.info("CDI spec removed resource=%s path=%s", name, path)

