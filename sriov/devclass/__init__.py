"""Device classes: one seam for everything a device class adds to discovery and Allocate.

Each class is one module with a ``HANDLER`` (see :mod:`sriov.devclass.base`) and one
line in :data:`HANDLERS`; the device plugin's Allocate, its CDI specs and the device-info
file all go through :func:`allocate` / :func:`device_info_document`, so the ``/dev``
rules live here only. The CNI can use the same seam (a device's nodes and RDMA devices).

========  ===================================  ===========================================
key       applies when                         device nodes
========  ===================================  ===========================================
generic   always                               none
vfio      driver ``vfio-pci``                  ``/dev/vfio/vfio``, group (noiommu-aware)
uio       driver ``uio``/``igb_uio``/          ``/dev/uioN``
          ``uio_pci_generic``
rdma      selector ``isRdma`` + RDMA device    ``/dev/infiniband/{ucm,issm,umad,uverbs}N``,
                                               ``rdma_cm``
vdpa      selector ``vdpaType`` = its driver   ``/dev/vhost-vdpa-N`` (vhost only)
vhost     selector ``needVhostNet``            ``/dev/vhost-net``, ``/dev/net/tun`` (both or
                                               neither)
========  ===================================  ===========================================
"""

from __future__ import annotations

import dataclasses
import logging
import os

from sriov.devclass import generic, rdma, uio, vdpa, vfio, vhost
from sriov.devclass.base import (
    DEFAULT_DEV_ROOT,
    AllocOptions,
    DeviceClassHandler,
    DeviceNode,
    NodeExists,
    under,
)
from sriov.types import Device, DriverKind

__all__ = [
    "DEFAULT_DEV_ROOT",
    "HANDLERS",
    "AllocOptions",
    "DeviceAllocation",
    "DeviceNode",
    "NodeExists",
    "allocate",
    "char_devices",
    "class_label",
    "device_info_document",
    "under",
]

log = logging.getLogger(__name__)

DEVINFO_VERSION = "1.1.0"

HANDLERS: tuple[DeviceClassHandler, ...] = (
    generic.HANDLER, vfio.HANDLER, uio.HANDLER, rdma.HANDLER, vdpa.HANDLER, vhost.HANDLER)
"""In upstream's info-provider order, which is also the order of the device specs."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class DeviceAllocation:
    """What one device contributes to a container."""

    nodes: tuple[DeviceNode, ...]
    info: dict[str, dict[str, str]]
    """``{class key: entry}`` for ``PCIDEVICE_*_INFO``."""
    missing: tuple[str, ...] = ()
    """Host paths a class wanted but the host does not have (left out)."""


def allocate(device: Device, options: AllocOptions,
             exists: NodeExists = os.path.exists) -> DeviceAllocation:
    """Nodes and ``_INFO`` entries of every class that applies to ``device``."""
    nodes: list[DeviceNode] = []
    missing: list[str] = []
    info: dict[str, dict[str, str]] = {}
    for handler in HANDLERS:
        if not handler.applies(device, options):
            continue
        wanted = handler.nodes(device, options, exists)
        present = tuple(n for n in wanted if exists(n.host_path))
        missing.extend(n.host_path for n in wanted if n not in present)
        if handler.all_or_nothing and len(present) < len(wanted):
            present = ()
        if len(present) < len(wanted):
            log.debug("device nodes missing on the host device=%s class=%s", device.id,
                      handler.name)
        nodes.extend(present)
        entry = handler.info(device, options, present, exists)
        if entry is not None:
            info[handler.name] = entry
    return DeviceAllocation(nodes=tuple(nodes), info=info, missing=tuple(missing))


def device_info_document(device: Device, options: AllocOptions) -> dict[str, object]:
    """The NPWG device-info file content (``type`` ``pci``, or ``vdpa`` for vDPA pools)."""
    if vdpa.HANDLER.applies(device, options):
        return {"type": "vdpa", "version": DEVINFO_VERSION,
                "vdpa": vdpa.HANDLER.document(device, options)}
    pci: dict[str, object] = {"pci-address": device.id}
    for handler in HANDLERS:
        if handler.applies(device, options):
            pci.update(handler.device_info(device, options) or {})
    return {"type": "pci", "version": DEVINFO_VERSION, "pci": pci}


def class_label(device: Device) -> str:
    """Short class for people: ``vf``, ``vf/vfio``, ``nic``, ``accelerator/vfio``, ``sf+rdma``."""
    kind = device.driver_kind
    label = str(device.device_class)
    if kind in (DriverKind.VFIO, DriverKind.UIO):
        label += "/" + ("vfio-noiommu" if device.noiommu else str(kind))
    if device.vdpa is not None:
        label += "/vdpa-" + (vdpa.vdpa_type(device) or "unbound")
    if device.rdma_devices:
        label += "+rdma"
    return label


def char_devices(device: Device, exists: NodeExists = os.path.exists) -> tuple[str, ...]:
    """Every /dev node the device has (whatever a pool would ask for), for ``sriovctl list``;
    shared nodes (``/dev/vfio/vfio``, ``rdma_cm``, vhost-net) are left out."""
    everything = AllocOptions(is_rdma=True, vdpa_type=vdpa.vdpa_type(device))
    paths: list[str] = []
    for handler in HANDLERS:
        if handler is vhost.HANDLER or not handler.applies(device, everything):
            continue
        paths.extend(n.host_path for n in handler.nodes(device, everything, exists)
                     if n.host_path not in (vfio.VFIO_CONTAINER, rdma.RDMA_CM))
    return tuple(dict.fromkeys(paths))
