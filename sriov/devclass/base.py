"""The device-class seam: what one class contributes to an Allocate answer.

A class (vfio, uio, RDMA, vDPA, vhost-net, ...) is one module exposing a
:class:`DeviceClassHandler` and registered in :mod:`sriov.devclass`. For one device and
the options of the selector that claimed it, a handler says whether it applies, which
device nodes the container needs (host path, container path, permissions), its
``PCIDEVICE_*_INFO`` entry and its part of the NPWG device-info file.

Whether a device node exists is a parameter (:data:`NodeExists`, usually
:func:`under` a ``dev_root``: ``/dev`` on a real host, ``<root>/dev`` on an emulated one,
a temp dir in tests); the paths handed to the runtime are always the canonical
``/dev/...`` paths. Handlers are pure.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from sriov.types import Device

DEFAULT_DEV_ROOT = Path("/dev")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class DeviceNode:
    """One device node for the container (a kubelet ``DeviceSpec`` / CDI ``deviceNodes`` entry)."""

    container_path: str
    host_path: str
    permissions: str = "rw"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class AllocOptions:
    """What the selector object that claimed a device asks for (upstream: per selector)."""

    is_rdma: bool = False
    vdpa_type: str | None = None
    """``vhost`` or ``virtio``."""
    need_vhost_net: bool = False


NodeExists = Callable[[str], bool]
"""Whether the host has the device node ``/dev/...``."""


def under(dev_root: Path) -> NodeExists:
    """Check ``/dev/...`` paths under ``dev_root`` instead of ``/dev``."""
    def exists(host_path: str) -> bool:
        return os.path.exists(os.path.join(dev_root, host_path.removeprefix("/dev/")))
    return exists


def same_path(path: str) -> DeviceNode:
    return DeviceNode(container_path=path, host_path=path)


class DeviceClassHandler(Protocol):
    @property
    def name(self) -> str:
        """The ``_INFO`` key (``vfio``, ``uio``, ``rdma``, ``vdpa``, ``vhost``)."""
        ...

    @property
    def all_or_nothing(self) -> bool:
        """One missing node drops all of this class's nodes (vhost-net + tun)."""
        ...

    def applies(self, device: Device, options: AllocOptions) -> bool: ...

    def nodes(self, device: Device, options: AllocOptions,
              exists: NodeExists) -> tuple[DeviceNode, ...]:
        """The nodes this class wants (the caller leaves out those that do not exist)."""
        ...

    def info(self, device: Device, options: AllocOptions, present: tuple[DeviceNode, ...],
             exists: NodeExists) -> dict[str, str] | None:
        """The ``_INFO`` entry given the nodes handed out; ``None``: no entry."""
        ...

    def device_info(self, device: Device, options: AllocOptions) -> dict[str, object] | None:
        """Keys merged into the device-info file's ``pci`` section (``None``: nothing)."""
        ...
