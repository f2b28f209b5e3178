"""Pure construction of one container's Allocate answer (env, device specs, CDI, device-info).

Follows sriov-network-device-plugin's contract so existing workloads and sriov-cni
keep working: ``PCIDEVICE_<PREFIX>_<NAME>`` (comma-separated device IDs) and
``..._INFO`` JSON, device nodes, and the NPWG device-info file. What each device class
adds (vfio, uio, RDMA, vDPA, vhost-net nodes and ``_INFO`` entries, the device-info
content) comes from :mod:`sriov.devclass`; this module only assembles the answer.
A device node missing on the host is left out (``missing_nodes`` says which, for a
warning): a runtime given one fails the container. Existence is checked under
``dev_root`` (or by ``node_exists``), so this module stays pure.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Sequence
from pathlib import Path

from deviceplugin.pool import PoolDevice, PoolSpec
from sriov import devclass
from sriov.devclass import DeviceNode, NodeExists
from sriov.devclass.vfio import VFIO_CONTAINER
from sriov.devclass.vhost import TUN, VHOST_NET

__all__ = [
    "DEFAULT_DEVINFO_DIR",
    "DEVINFO_VERSION",
    "TUN",
    "VFIO_CONTAINER",
    "VHOST_NET",
    "ContainerAllocation",
    "DeviceNode",
    "allocate_container",
    "cdi_name",
    "devinfo_file_name",
    "env_name",
]

DEFAULT_DEVINFO_DIR = Path("/var/run/k8s.cni.cncf.io/devinfo/dp")
DEVINFO_VERSION = devclass.DEVINFO_VERSION
CDI_CLASS_OF_TYPE = {"netDevice": "net-pci", "accelerator": "net-accel", "auxNetDevice": "net-sf"}
"""CDI device class per ``deviceType`` (upstream's pool ``GetCDIName``)."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ContainerAllocation:
    envs: dict[str, str]
    devices: tuple[DeviceNode, ...]
    cdi_devices: tuple[str, ...]
    device_info: dict[str, str]
    """``{file name: JSON content}`` of NPWG device-info files to write."""
    missing_nodes: tuple[str, ...] = ()
    """Host device nodes that were wanted but do not exist (left out of ``devices``)."""


def env_name(full_name: str) -> str:
    """``intel.com/sriov`` -> ``PCIDEVICE_INTEL_COM_SRIOV`` (upstream: ``.`` and ``/`` -> ``_``)."""
    return "PCIDEVICE_" + re.sub(r"[./]", "_", full_name.upper())


def devinfo_file_name(full_name: str, pci: str) -> str:
    """NPWG device-info file name: ``<resource with / -> ->-<pci>-device.json``."""
    return f"{full_name.replace('/', '-')}-{pci}-device.json"


def cdi_name(prefix: str, device_id: str, device_type: str = "netDevice") -> str:
    return f"{prefix}/{CDI_CLASS_OF_TYPE.get(device_type, 'net-pci')}={device_id}"


def _trust(path: str) -> bool:
    return True


def device_info_json(device: PoolDevice) -> str:
    return json.dumps(devclass.device_info_document(device.vf, device.options), sort_keys=True)


def _info(spec: PoolSpec, device: PoolDevice, found: devclass.DeviceAllocation
          ) -> dict[str, dict[str, str]]:
    info = dict(found.info)
    extra = spec.extra_info(device.vf.address)
    if extra:
        info["extra"] = extra
    return info


def allocate_container(
    spec: PoolSpec, devices: Sequence[PoolDevice], *, use_cdi: bool,
    dev_root: Path | None = None, node_exists: NodeExists | None = None,
) -> ContainerAllocation:
    """The answer for one ``ContainerAllocateRequest`` whose IDs resolved to ``devices``.

    Device specs are de-duplicated by host path within the request (as upstream), so two
    VFs sharing ``/dev/vfio/vfio`` or ``rdma_cm`` list it once. Nodes are checked by
    ``node_exists``, else under ``dev_root``, else trusted (pure callers and tests).
    """
    exists = node_exists or (devclass.under(dev_root) if dev_root else _trust)
    key = env_name(spec.full_name)
    ids = [d.id for d in devices]
    per_device = {d.id: devclass.allocate(d.vf, d.options, exists) for d in devices}
    nodes: dict[str, DeviceNode] = {}
    for found in per_device.values():
        for node in found.nodes:
            nodes.setdefault(node.host_path, node)
    envs = {
        key: ",".join(ids),
        key + "_INFO": json.dumps({d.id: _info(spec, d, per_device[d.id]) for d in devices},
                                  sort_keys=True),
    }
    files = {}
    if spec.device_type == "netDevice":
        files = {devinfo_file_name(spec.full_name, d.id): device_info_json(d) for d in devices}
    return ContainerAllocation(
        envs=envs,
        devices=tuple(nodes.values()),
        cdi_devices=tuple(cdi_name(spec.prefix, i, spec.device_type) for i in ids)
        if use_cdi else (),
        device_info=files,
        missing_nodes=tuple(dict.fromkeys(p for f in per_device.values() for p in f.missing)),
    )
