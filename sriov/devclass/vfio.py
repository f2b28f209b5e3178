"""vfio-pci, with and without an IOMMU.

Discovery: ``<pci>/iommu_group`` -> ``/sys/kernel/iommu_groups/<G>``; a group whose
``name`` reads ``vfio-noiommu`` (``vfio.enable_unsafe_noiommu_mode=1``) has the host node
``/dev/vfio/noiommu-<G>``, which the container sees as ``/dev/vfio/<G>`` (as upstream),
so DPDK inside finds the usual path.
"""

from __future__ import annotations

import os

from sriov.devclass import _fs
from sriov.devclass.base import AllocOptions, DeviceNode, NodeExists, same_path
from sriov.types import Device

VFIO_CONTAINER = "/dev/vfio/vfio"
NOIOMMU_GROUP_NAME = "vfio-noiommu"
DRIVERS = frozenset({"vfio-pci"})


def discover_noiommu(dev_dir: str) -> bool:
    """Whether the device's IOMMU group is a vfio no-IOMMU group."""
    return _fs.read(os.path.join(dev_dir, "iommu_group", "name")) == NOIOMMU_GROUP_NAME


def group_paths(device: Device) -> tuple[str, str] | None:
    """``(host path, container path)`` of the group node, ``None`` without a group."""
    if device.iommu_group is None:
        return None
    group = device.iommu_group
    host = f"/dev/vfio/noiommu-{group}" if device.noiommu else f"/dev/vfio/{group}"
    return host, f"/dev/vfio/{group}"


class Vfio:
    all_or_nothing = False
    name = "vfio"

    def applies(self, device: Device, options: AllocOptions) -> bool:
        return device.driver in DRIVERS

    def nodes(self, device: Device, options: AllocOptions,
              exists: NodeExists) -> tuple[DeviceNode, ...]:
        paths = group_paths(device)
        nodes = [same_path(VFIO_CONTAINER)]
        if paths is not None:
            nodes.append(DeviceNode(host_path=paths[0], container_path=paths[1]))
        return tuple(nodes)

    def info(self, device: Device, options: AllocOptions, present: tuple[DeviceNode, ...],
             exists: NodeExists) -> dict[str, str] | None:
        info = {"mount": VFIO_CONTAINER}
        paths = group_paths(device)
        if paths is not None:
            info["dev-mount"] = paths[1]
        return info

    def device_info(self, device: Device, options: AllocOptions) -> dict[str, object] | None:
        return None


HANDLER = Vfio()
