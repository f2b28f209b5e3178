"""Change a running emulated host the way an admin changes real hardware.

- :func:`rebind`: driver_override + bind (kernel VF driver <-> vfio-pci / uio / none);
- :func:`set_num_vfs`: write ``sriov_numvfs`` (like the kernel: only from or to 0);
- :func:`set_pf_carrier`: pull or plug the PF's cable.

Each keeps the sysfs tree, the real links and ``sriov-emu.json`` in step.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from sriov.emulate import host, wiring
from sriov.emulate import spec as names
from sriov.emulate.profiles import PROFILES
from sriov.emulate.spec import EmulationState, PfRecord, VfLocation, VfRecord
from sriov.emulate.tree import SysfsTreeBuilder
from sriov.emulate.vfadmin import EmulatedVfAdmin, load_state
from sriov.errors import DeviceNotFoundError, EmulationError
from sriov.netlink import Netlink
from sriov.types import DriverKind, IfName, LinkState
from sriov.validate import pci_address

log = logging.getLogger(__name__)

UNBOUND = ("", "none")


def _pf(state: EmulationState, name: str) -> PfRecord:
    pf = state.pf_by_name(name)
    if pf is None:
        known = ", ".join(f"{p.address} ({p.netdev})" for p in state.pfs)
        raise DeviceNotFoundError("emulated PF", name, f"known PFs: {known}")
    return pf


def rebind(root: Path, vf_address: str, driver: str, netlink: Netlink) -> VfRecord:
    """Bind VF ``vf_address`` to ``driver``; ``none`` unbinds it. Returns its new record."""
    load_state(root)
    with host.locked(root):
        return _rebind(root, vf_address, driver, netlink)


def _rebind(root: Path, vf_address: str, driver: str, netlink: Netlink) -> VfRecord:
    """Bind VF ``vf_address`` to ``driver``; ``none`` unbinds it. Returns its new record."""
    state = load_state(root)
    vf = state.vf_by_address(pci_address(vf_address))
    if vf is None:
        raise DeviceNotFoundError("emulated VF", vf_address, "see 'sriovctl emulate status'")
    profile = PROFILES[state.spec.profile.value]
    driver = "" if driver in UNBOUND else driver
    kind = DriverKind.of(driver or None)
    if kind is DriverKind.KERNEL and driver != profile.vf_driver:
        raise EmulationError(f"driver {driver} does not handle {profile.vendor_id}:"
                             f"{profile.vf_device_id} VFs (their kernel driver is "
                             f"{profile.vf_driver}; vfio-pci for DPDK)")
    if driver == vf.driver:
        return vf
    tree = SysfsTreeBuilder(root)
    links = wiring.Wiring(netlink, state.spec.bridge)
    if vf.location in (VfLocation.HOST, VfLocation.NETNS):
        # Unbinding the netdev driver unregisters the netdev, even inside a pod.
        netlink.delete_if_exists(vf.wire)
    if kind is not DriverKind.KERNEL:
        tree.bind_vf_driver(vf.address, driver or None)
        location = VfLocation.PARKED if state.spec.netdevs else VfLocation.ABSENT
        new = dataclasses.replace(vf, driver=driver, location=location)
        host.save_state(root, state.with_vf(new))
        log.info("VF %s bound to %s", vf.address, driver or "no driver")
        return new
    # Back to the kernel driver: a fresh netdev with the default name, the admin MAC if
    # one is set (else the VF's own), and the PF's MTU - what a driver probe gives.
    admin_mac = EmulatedVfAdmin(root, links).read(state.pfs[vf.pf].netdev, vf.index).mac
    mac = names.vf_mac(state.spec, vf.pf, vf.index) if admin_mac == "00:00:00:00:00:00" \
        else admin_mac
    default_name = names.vf_netdev(state.spec, vf.pf, vf.index)
    if not state.spec.netdevs:
        tree.bind_vf_driver(vf.address, driver, ifname=default_name)
        new = dataclasses.replace(vf, driver=driver, location=VfLocation.ABSENT)
        host.save_state(root, state.with_vf(new))
        return new
    tree.bind_vf_driver(vf.address, driver)
    new = dataclasses.replace(
        vf,
        driver=driver,
        location=VfLocation.HOST,
        netdev=IfName(links.free_name(default_name)),
        mac=mac,
        mtu=state.spec.mtu,
    )
    state = state.with_vf(new)
    host.save_state(root, state)
    wiring.sync_netdev(tree, vf.address, wiring.attach_vf(root, state, new, links))
    log.info("VF %s bound to %s as %s", vf.address, driver, new.netdev)
    return new


def set_num_vfs(root: Path, pf_name: str, count: int, netlink: Netlink) -> tuple[VfRecord, ...]:
    """Write ``sriov_numvfs``; like the kernel, a non-zero count changes only from 0."""
    load_state(root)
    with host.locked(root):
        return _set_num_vfs(root, pf_name, count, netlink)


def _set_num_vfs(root: Path, pf_name: str, count: int, netlink: Netlink) -> tuple[VfRecord, ...]:
    """Write ``sriov_numvfs``; like the kernel, a non-zero count changes only from 0."""
    state = load_state(root)
    pf = _pf(state, pf_name)
    current = state.vfs_of(pf.index)
    if count == len(current):
        return current
    if current and count:
        raise EmulationError(f"{pf.address} already has {len(current)} VFs; set 0 first "
                             "(the kernel answers EBUSY to changing a non-zero sriov_numvfs)")
    tree = SysfsTreeBuilder(root)
    links = wiring.Wiring(netlink, state.spec.bridge)
    if count == 0:
        admin = EmulatedVfAdmin(root, links)
        for vf in current:
            if state.spec.netdevs:
                netlink.delete_if_exists(vf.wire)
            admin.reset(vf)
            state = state.without_vf(vf.address)
        tree.set_num_vfs(pf.address, 0)
        host.save_state(root, state)
        log.info("PF %s: all VFs removed", pf.address)
        return ()
    profile = PROFILES[state.spec.profile.value]
    vf_names = None if state.spec.netdevs else [
        names.vf_netdev(state.spec, pf.index, i) for i in range(count)]
    addresses = tree.set_num_vfs(pf.address, count, vf_ifnames=vf_names)
    location = VfLocation.HOST if state.spec.netdevs else VfLocation.ABSENT
    records = tuple(
        VfRecord(pf=pf.index, pf_address=pf.address, index=i, address=addr,
                 wire=names.vf_wire(state.spec, pf.index, i), driver=profile.vf_driver,
                 location=location, netdev=names.vf_netdev(state.spec, pf.index, i),
                 mac=names.vf_mac(state.spec, pf.index, i), mtu=state.spec.mtu)
        for i, addr in enumerate(addresses))
    for record in records:
        state = state.with_vf(record)
    host.save_state(root, state)
    if state.spec.netdevs:
        for record in records:
            wiring.sync_netdev(tree, record.address, wiring.attach_vf(root, state, record, links))
    log.info("PF %s: %s VFs created", pf.address, count)
    return records


def set_pf_carrier(root: Path, pf_name: str, up: bool, netlink: Netlink) -> None:
    """Plug (``up``) or pull the PF's cable: the PF and its ``auto`` VFs follow."""
    load_state(root)
    with host.locked(root):
        _set_pf_carrier(root, pf_name, up, netlink)


def _set_pf_carrier(root: Path, pf_name: str, up: bool, netlink: Netlink) -> None:
    """Plug (``up``) or pull the PF's cable: the PF and its ``auto`` VFs follow."""
    state = load_state(root)
    pf = _pf(state, pf_name)
    state = state.with_pf(dataclasses.replace(pf, carrier=up))
    host.save_state(root, state)
    if not state.spec.netdevs:
        tree = SysfsTreeBuilder(root)
        for name in [pf.netdev] + [v.netdev for v in state.vfs_of(pf.index)
                                    if DriverKind.of(v.driver) is DriverKind.KERNEL]:
            tree.set_carrier(name, up)
        return
    links = wiring.Wiring(netlink, state.spec.bridge)
    links.set_port_up(pf.wire, up)
    admin = EmulatedVfAdmin(root, links)
    for vf in state.vfs_of(pf.index):
        if vf.location in (VfLocation.HOST, VfLocation.NETNS):
            link_state = admin.read(pf.netdev, vf.index).link_state
            if link_state in (LinkState.AUTO, None):
                links.set_port_up(vf.wire, up)
    host.refresh_holding_lock(root, netlink, wiring.CLASS_NET)
    log.info("PF %s carrier %s", pf.address, "up" if up else "down")
