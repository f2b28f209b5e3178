"""``needVhostNet``: ``/dev/vhost-net`` and ``/dev/net/tun`` for userspace virtio backends.

As upstream: no ``/dev/vhost-net`` on the host -> no ``vhost`` entry and no nodes (a
warning); either node missing -> the entry but no nodes.
"""

from __future__ import annotations

from pathlib import Path

from sriov.devclass.base import AllocOptions, DeviceNode, node_exists, same_path
from sriov.types import Device

VHOST_NET = "/dev/vhost-net"
TUN = "/dev/net/tun"


class VhostNet:
    name = "vhost"

    def applies(self, device: Device, options: AllocOptions, dev_root: Path) -> bool:
        return options.need_vhost_net and node_exists(dev_root, VHOST_NET)

    def nodes(self, device: Device, options: AllocOptions,
              dev_root: Path) -> tuple[DeviceNode, ...]:
        if not (node_exists(dev_root, VHOST_NET) and node_exists(dev_root, TUN)):
            return ()
        return same_path(VHOST_NET), same_path(TUN)

    def info(self, device: Device, options: AllocOptions,
             present: tuple[DeviceNode, ...]) -> dict[str, str]:
        return {"net-mount": VHOST_NET, "tun-mount": TUN}

    def device_info(self, device: Device, options: AllocOptions) -> dict[str, object] | None:
        return None


HANDLER = VhostNet()
