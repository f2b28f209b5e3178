"""The emulated tree read the way the kernel's sysfs is read: always current.

On a real host the kernel keeps ``/sys/bus/pci/devices/<vf>/net/`` current by itself: a VF
netdev moved into a pod disappears from it, a rename shows at once, and a VF whose pod netns
was destroyed reappears under the pod's name. The emulated tree is plain files, so this
reader brings one VF's ``net/`` entry up to date (:func:`sriov.emulate.host.sync_vf`) right
before it is read, as the kernel would have. Callers read sysfs through the ordinary
:class:`sriov.sysfs.SysfsReader` interface and never call into the emulator; only
:func:`sriov.host.open_host` picks this reader for an emulated root.
"""

from __future__ import annotations

from pathlib import Path

from sriov.emulate import host as emulated
from sriov.netlink import Netlink
from sriov.sysfs import SysfsReader
from sriov.types import IfName, VirtualFunction


class LiveSysfsReader(SysfsReader):
    """:class:`SysfsReader` of an emulated root whose per-VF reads see the netdevs' real state."""

    def __init__(self, root: Path, netlink: Netlink) -> None:
        super().__init__(root)
        self._emulated_root = root
        self._netlink = netlink

    def _sync(self, address: str) -> None:
        emulated.sync_vf(self._emulated_root, self._netlink, address)

    def vf(self, address: str) -> VirtualFunction:
        self._sync(address)
        return super().vf(address)

    def vf_of(self, pf_address: str, index: int) -> VirtualFunction:
        vf = super().vf_of(pf_address, index)
        self._sync(vf.address)
        return super().vf(vf.address)

    def vf_netdev(self, address: str) -> IfName | None:
        self._sync(address)
        return super().vf_netdev(address)
