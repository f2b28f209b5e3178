"""Hotplug events from a real SR-IOV kernel: VFs created and destroyed through ``sriov_numvfs``
appear as PCI ``added``/``removed`` events (pyudev, kernel source) with their PCI address, and
their igbvf netdevs as ``net`` events, all through the one ``EventStream``."""

from __future__ import annotations

from sriov.events import DeviceEvent, EventKind, EventStream
from sriov.udev import UdevEventSource
from tests.vm import hw
from tests.vm.conftest import EnableVfs

DEADLINE = 30.0


def _pci(kind: EventKind, address: str):  # type: ignore[no-untyped-def]
    return lambda e: e.kind is kind and e.subsystem == "pci" and e.pci == address


def test_numvfs_changes_are_pci_added_and_removed_events(sriov_pf: hw.RealPf,
                                                         enable_vfs: EnableVfs) -> None:
    with EventStream([UdevEventSource()]) as stream:
        vfs = enable_vfs(sriov_pf, 2)
        seen: list[DeviceEvent] = stream.wait_for(_pci(EventKind.ADDED, vfs[-1].address), DEADLINE)
        added = {e.pci for e in seen if e.kind is EventKind.ADDED and e.subsystem == "pci"}
        assert {vf.address for vf in vfs} <= added, seen
        def net_added(e: DeviceEvent) -> bool:
            return e.subsystem == "net" and e.kind is EventKind.ADDED

        if not any(net_added(e) for e in seen):  # the igbvf netdevs may follow the PCI events
            seen += stream.wait_for(net_added, DEADLINE)
        assert any(net_added(e) for e in seen), seen

        hw.set_num_vfs(sriov_pf, 0)
        seen = stream.wait_for(_pci(EventKind.REMOVED, vfs[-1].address), DEADLINE)
        removed = {e.pci for e in seen if e.kind is EventKind.REMOVED and e.subsystem == "pci"}
        assert {vf.address for vf in vfs} <= removed, seen
