"""uio drivers (``igb_uio``, ``uio_pci_generic``): ``/dev/uioN``.

Discovery: the first entry of ``<pci>/uio/`` (``uio0``), the class device the kernel
creates when a uio driver binds. Upstream hands ``uio_pci_generic`` devices out without
their node (only ``uio``/``igb_uio`` get the uio provider), so a DPDK app cannot open
them; we give every uio driver its node (docs/device-plugin.md).
"""

from __future__ import annotations

import os

from sriov.devclass import _fs
from sriov.devclass.base import AllocOptions, DeviceNode, NodeExists, same_path
from sriov.types import UIO_DRIVERS, Device

DRIVERS = UIO_DRIVERS | {"uio"}


def discover(dev_dir: str) -> str | None:
    names = [n for n in _fs.entries(os.path.join(dev_dir, "uio")) if n.startswith("uio")]
    return names[0] if names else None


class Uio:
    all_or_nothing = False
    name = "uio"

    def applies(self, device: Device, options: AllocOptions) -> bool:
        return device.driver in DRIVERS

    def nodes(self, device: Device, options: AllocOptions,
              exists: NodeExists) -> tuple[DeviceNode, ...]:
        return (same_path(f"/dev/{device.uio_device}"),) if device.uio_device else ()

    def info(self, device: Device, options: AllocOptions, present: tuple[DeviceNode, ...],
             exists: NodeExists) -> dict[str, str] | None:
        return {"mount": present[0].container_path} if present else {}

    def device_info(self, device: Device, options: AllocOptions) -> dict[str, object] | None:
        return None


HANDLER = Uio()
