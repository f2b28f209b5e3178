"""Every device: the ``generic`` info entry, no device nodes (netdev VFs, NICs, SFs)."""

from __future__ import annotations

from sriov.devclass.base import AllocOptions, DeviceNode, NodeExists
from sriov.types import Device


class Generic:
    all_or_nothing = False
    name = "generic"

    def applies(self, device: Device, options: AllocOptions) -> bool:
        return True

    def nodes(self, device: Device, options: AllocOptions,
              exists: NodeExists) -> tuple[DeviceNode, ...]:
        return ()

    def info(self, device: Device, options: AllocOptions, present: tuple[DeviceNode, ...],
             exists: NodeExists) -> dict[str, str] | None:
        return {"deviceID": device.id}

    def device_info(self, device: Device, options: AllocOptions) -> dict[str, object] | None:
        return None


HANDLER = Generic()
