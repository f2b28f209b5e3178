"""``needVhostNet``: ``/dev/vhost-net`` and ``/dev/net/tun`` for userspace virtio backends.

As upstream: both nodes or neither (:attr:`VhostNet.all_or_nothing`); no
``/dev/vhost-net`` on the host -> no ``vhost`` entry either.
"""

from __future__ import annotations

from sriov.devclass.base import AllocOptions, DeviceNode, NodeExists, same_path
from sriov.types import Device

VHOST_NET = "/dev/vhost-net"
TUN = "/dev/net/tun"


class VhostNet:
    name = "vhost"
    all_or_nothing = True

    def applies(self, device: Device, options: AllocOptions) -> bool:
        return options.need_vhost_net

    def nodes(self, device: Device, options: AllocOptions,
              exists: NodeExists) -> tuple[DeviceNode, ...]:
        return same_path(VHOST_NET), same_path(TUN)

    def info(self, device: Device, options: AllocOptions, present: tuple[DeviceNode, ...],
             exists: NodeExists) -> dict[str, str] | None:
        return {"net-mount": VHOST_NET, "tun-mount": TUN} if exists(VHOST_NET) else None

    def device_info(self, device: Device, options: AllocOptions) -> dict[str, object] | None:
        return None


HANDLER = VhostNet()
