"""Pure construction of one container's Allocate answer (env, device specs, CDI, device-info).

Follows sriov-network-device-plugin's contract so existing workloads and sriov-cni
keep working: ``PCIDEVICE_<PREFIX>_<NAME>`` (comma-separated PCI addresses) and
``..._INFO`` JSON, vfio device nodes, vhost-net, and the NPWG device-info file.

A device node missing on the host is left out (``missing_nodes`` says which, for a
warning): a runtime given one fails the container. ``/dev/vhost-net`` and ``/dev/net/tun``
go together or not at all, and the ``vhost`` env entry needs ``/dev/vhost-net``, as upstream.
The existence check is a parameter, so this module stays pure.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path

from deviceplugin.pool import PoolDevice, PoolSpec
from sriov.types import DriverKind

VFIO_CONTAINER = "/dev/vfio/vfio"
VHOST_NET = "/dev/vhost-net"
TUN = "/dev/net/tun"
DEFAULT_DEVINFO_DIR = Path("/var/run/k8s.cni.cncf.io/devinfo/dp")
DEVINFO_VERSION = "1.1.0"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class DeviceNode:
    container_path: str
    host_path: str
    permissions: str = "rw"


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


def cdi_name(prefix: str, pci: str) -> str:
    return f"{prefix}/net-pci={pci}"


NodeExists = Callable[[str], bool]


def _device_nodes(devices: Sequence[PoolDevice],
                  exists: NodeExists) -> tuple[tuple[DeviceNode, ...], tuple[str, ...]]:
    """(nodes handed out, wanted host paths that do not exist)."""
    wanted: list[str] = []
    for device in devices:
        if device.vf.driver_kind is DriverKind.VFIO and device.vf.iommu_group is not None:
            wanted += [VFIO_CONTAINER, f"/dev/vfio/{device.vf.iommu_group}"]
    vhost = [VHOST_NET, TUN] if any(d.need_vhost_net for d in devices) else []
    wanted = list(dict.fromkeys(wanted))
    absent = [p for p in (*wanted, *vhost) if not exists(p)]
    if any(p in absent for p in vhost):
        vhost = []  # upstream: both or neither
    nodes = tuple(DeviceNode(container_path=p, host_path=p)
                  for p in (*wanted, *vhost) if p not in absent)
    return nodes, tuple(absent)


def _info(spec: PoolSpec, device: PoolDevice, exists: NodeExists) -> dict[str, dict[str, str]]:
    info: dict[str, dict[str, str]] = {"generic": {"deviceID": device.id}}
    vf = device.vf
    if vf.driver_kind is DriverKind.VFIO and vf.iommu_group is not None:
        info["vfio"] = {"mount": VFIO_CONTAINER, "dev-mount": f"/dev/vfio/{vf.iommu_group}"}
    if device.need_vhost_net and exists(VHOST_NET):
        info["vhost"] = {"net-mount": VHOST_NET, "tun-mount": TUN}
    extra = spec.extra_info(device.id)
    if extra:
        info["extra"] = extra
    return info


def _devinfo_json(device: PoolDevice) -> str:
    pci: dict[str, str] = {"pci-address": device.id}
    return json.dumps({"type": "pci", "version": DEVINFO_VERSION, "pci": pci}, sort_keys=True)


def allocate_container(
    spec: PoolSpec, devices: Sequence[PoolDevice], *, use_cdi: bool,
    node_exists: NodeExists = lambda path: True,
) -> ContainerAllocation:
    """The answer for one ``ContainerAllocateRequest`` whose IDs resolved to ``devices``.

    ``node_exists`` tells whether a host device node exists (the servicer passes
    ``os.path.exists``); the default trusts every node."""
    key = env_name(spec.full_name)
    ids = [d.id for d in devices]
    envs = {
        key: ",".join(ids),
        key + "_INFO": json.dumps({d.id: _info(spec, d, node_exists) for d in devices},
                                  sort_keys=True),
    }
    nodes, missing = _device_nodes(devices, node_exists)
    files = {}
    if spec.device_type == "netDevice":
        files = {devinfo_file_name(spec.full_name, d.id): _devinfo_json(d) for d in devices}
    return ContainerAllocation(
        envs=envs,
        devices=nodes,
        cdi_devices=tuple(cdi_name(spec.prefix, i) for i in ids) if use_cdi else (),
        device_info=files,
        missing_nodes=missing,
    )
