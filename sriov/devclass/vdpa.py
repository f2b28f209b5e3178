"""vDPA (``vdpaType``): the vdpa bus device whose parent is this PCI function.

Discovery: ``/sys/bus/vdpa/devices/vdpaX`` links to ``.../<pci>/vdpaX``; its ``driver``
link names ``vhost_vdpa`` or ``virtio_vdpa``; a vhost-bound device has the class device
``vdpaX/vhost-vdpa-N`` whose node is ``/dev/vhost-vdpa-N``. Several vdpa devices on one
function: the lowest-numbered one (upstream takes govdpa's first).
"""

from __future__ import annotations

import os
import re

from sriov.devclass import _fs
from sriov.devclass.base import AllocOptions, DeviceNode, NodeExists, same_path
from sriov.types import Device, VdpaDevice

VHOST_DRIVER, VIRTIO_DRIVER = "vhost_vdpa", "virtio_vdpa"
TYPE_OF_DRIVER = {VHOST_DRIVER: "vhost", VIRTIO_DRIVER: "virtio"}
_VDPA = re.compile(r"^vdpa([0-9]+)$")


class VdpaIndex:
    """Parent device name (a PCI address) -> its first vdpa device, built once per scan."""

    def __init__(self, sys_dir: str) -> None:
        bus = os.path.join(sys_dir, "bus", "vdpa", "devices")
        found: dict[str, tuple[int, VdpaDevice]] = {}
        for name in _fs.entries(bus):
            m = _VDPA.match(name)
            if not m:
                continue
            path = os.path.join(bus, name)
            parent = os.path.basename(os.path.dirname(os.path.realpath(path)))
            vhost = [n for n in _fs.entries(path) if n.startswith("vhost-vdpa-")]
            device = VdpaDevice(name=name, driver=_fs.link_name(os.path.join(path, "driver")),
                                vhost_device=vhost[0] if vhost else None)
            number = int(m.group(1))
            if parent not in found or number < found[parent][0]:
                found[parent] = (number, device)
        self._by_parent = {parent: dev for parent, (_, dev) in found.items()}

    def of(self, parent: str) -> VdpaDevice | None:
        return self._by_parent.get(parent)


def vdpa_type(device: Device) -> str | None:
    """``vhost``/``virtio`` from the vdpa device's driver; ``None`` without one."""
    return TYPE_OF_DRIVER.get(device.vdpa.driver or "") if device.vdpa else None


def vhost_path(device: Device) -> str | None:
    if device.vdpa is None or device.vdpa.vhost_device is None:
        return None
    return f"/dev/{device.vdpa.vhost_device}"


class Vdpa:
    all_or_nothing = False
    name = "vdpa"

    def applies(self, device: Device, options: AllocOptions) -> bool:
        return options.vdpa_type is not None and vdpa_type(device) == options.vdpa_type

    def nodes(self, device: Device, options: AllocOptions,
              exists: NodeExists) -> tuple[DeviceNode, ...]:
        path = vhost_path(device) if options.vdpa_type == "vhost" else None
        return (same_path(path),) if path else ()

    def info(self, device: Device, options: AllocOptions, present: tuple[DeviceNode, ...],
             exists: NodeExists) -> dict[str, str] | None:
        return {"mount": present[0].container_path} if present else {}

    def device_info(self, device: Device, options: AllocOptions) -> dict[str, object] | None:
        return None

    def document(self, device: Device, options: AllocOptions) -> dict[str, object]:
        """The device-info ``vdpa`` section (replaces the ``pci`` one, as upstream)."""
        assert device.vdpa is not None
        section: dict[str, object] = {"parent-device": device.vdpa.name,
                                      "driver": vdpa_type(device), "pci-address": device.id}
        path = vhost_path(device)
        if options.vdpa_type == "vhost" and path:
            section["path"] = path
        return section


HANDLER = Vdpa()
