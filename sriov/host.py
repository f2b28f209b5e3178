"""The one place that decides whether a sysfs root is real hardware or the emulated host.

``open_host(root, netlink)`` returns a :class:`Host` whose ``sysfs`` reads the tree,
whose ``vf_admin`` configures PF-side VF settings (netlink for real PFs, the emulated
admin for an emulated host) and whose ``refresh()`` re-syncs a whole emulated tree with
where its netdevs really are (a no-op on real hardware, where the kernel does it).
Per-VF reads of an emulated tree are current by themselves
(:class:`sriov.emulate.live.LiveSysfsReader`), so the CNI never calls ``refresh()``; the
device plugin and sriovctl call it before a full inventory scan.
Callers (CNI, device plugin, sriovctl) never check for emulation themselves.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path

from sriov.emulate import host as emulated
from sriov.emulate.live import LiveSysfsReader
from sriov.netlink import Netlink
from sriov.netlink_rdma import RdmaOps
from sriov.sysfs import SysfsReader
from sriov.vfadmin import NetlinkVfAdmin, VfAdmin

log = logging.getLogger(__name__)


def _no_refresh() -> None:
    return None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Host:
    """SR-IOV host access under one sysfs root."""

    root: Path
    sysfs: SysfsReader
    vf_admin: VfAdmin
    emulated: bool
    refresher: Callable[[], object] = _no_refresh
    """Re-syncs the emulated tree (~4.5 ms for 2 PFs x 4 VFs here); real hosts: nothing."""
    rdma: RdmaOps = dataclasses.field(default_factory=RdmaOps)
    """RDMA netns mode and device moves (the kernel's, on emulated hosts too: the emulation
    has no RDMA kernel objects; tests without RDMA hardware substitute it)."""

    def refresh(self) -> None:
        """Make the whole tree reflect where VF netdevs are right now (before an inventory scan;
        single-VF reads through ``sysfs`` need no refresh)."""
        self.refresher()


def open_host(root: Path, netlink: Netlink) -> Host:
    """Open the host at ``root``: emulated iff ``<root>/sriov-emu.json`` exists."""
    if emulated.host_is_emulated(root):
        log.debug("sysfs root %s is an emulated SR-IOV host", root)
        return Host(root=root, sysfs=LiveSysfsReader(root, netlink),
                    vf_admin=emulated.vf_admin(root, netlink),
                    emulated=True, refresher=lambda: emulated.refresh(root, netlink))
    return Host(root=root, sysfs=SysfsReader(root), vf_admin=NetlinkVfAdmin(netlink),
                emulated=False)
