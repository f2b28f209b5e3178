"""Every device: the ``generic`` info entry, no device nodes (netdev VFs, NICs, SFs)."""

from __future__ import annotations

from pathlib import Path

from sriov.devclass.base import AllocOptions, DeviceNode
from sriov.types import Device


class Generic:
    name = "generic"

    def applies(self, device: Device, options: AllocOptions, dev_root: Path) -> bool:
        return True

    def nodes(self, device: Device, options: AllocOptions,
              dev_root: Path) -> tuple[DeviceNode, ...]:
        return ()

    def info(self, device: Device, options: AllocOptions,
             present: tuple[DeviceNode, ...]) -> dict[str, str]:
        return {"deviceID": device.id}

    def device_info(self, device: Device, options: AllocOptions) -> dict[str, object] | None:
        return None


HANDLER = Generic()
