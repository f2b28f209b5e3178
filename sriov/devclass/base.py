"""The device-class seam: what one class contributes to an Allocate answer.

A class (vfio, uio, RDMA, vDPA, vhost-net, ...) is one module exposing a
:class:`DeviceClassHandler` and registered in :mod:`sriov.devclass`. For one device and
the options of the selector that claimed it, a handler says whether it applies, which
device nodes the container needs (host path, container path, permissions), its
``PCIDEVICE_*_INFO`` entry and its part of the NPWG device-info file.

Device nodes are checked against ``dev_root`` (``/dev`` on a real host, ``<root>/dev``
on an emulated one, a temp dir in tests); the paths handed to the runtime are always
the canonical ``/dev/...`` paths. Pure apart from ``os.path.exists`` on ``dev_root``.
"""

from __future__ import annotations

import dataclasses
import os
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


def node_exists(dev_root: Path, host_path: str) -> bool:
    """Whether ``/dev/...`` exists under ``dev_root``."""
    relative = host_path.removeprefix("/dev/")
    return os.path.exists(os.path.join(dev_root, relative))


def same_path(path: str) -> DeviceNode:
    return DeviceNode(container_path=path, host_path=path)


class DeviceClassHandler(Protocol):
    @property
    def name(self) -> str:
        """The ``_INFO`` key (``vfio``, ``uio``, ``rdma``, ``vdpa``, ``vhost``)."""
        ...

    def applies(self, device: Device, options: AllocOptions, dev_root: Path) -> bool: ...

    def nodes(self, device: Device, options: AllocOptions,
              dev_root: Path) -> tuple[DeviceNode, ...]:
        """The nodes this class wants (existence is checked by the caller)."""
        ...

    def info(self, device: Device, options: AllocOptions,
             present: tuple[DeviceNode, ...]) -> dict[str, str]:
        """The ``_INFO`` entry, given the nodes that really exist."""
        ...

    def device_info(self, device: Device, options: AllocOptions) -> dict[str, object] | None:
        """Keys merged into the device-info file's ``pci`` section (``None``: nothing)."""
        ...
