"""The emulated SR-IOV host: a sysfs tree plus real veth-backed netdevs.

Every emulated PF and VF netdev is one end of a veth pair. The other end, the
"wire", keeps a stable name in the host netns and is a port of the host's bridge,
so all functions of the emulated host share one L2 segment; a VF with a port VLAN
has its wire on that VLAN's own bridge instead (see :mod:`sriov.emulate.vfadmin`). The sysfs tree
(:mod:`sriov.emulate.tree`) mirrors the real netdevs: name, ifindex, MAC, MTU,
carrier. ``<root>/sriov-emu.json`` records the spec, every name, and where each VF
netdev was last seen.

The real kernel moves a VF netdev back to the host netns, keeping its pod-side
name, MAC and MTU, when the pod's netns is destroyed; a veth is destroyed instead.
:func:`refresh` closes that gap: it records each VF netdev's name/MAC/MTU even
while it sits in another netns (RTM_GETLINK with IFLA_TARGET_NETNSID), and when a
VF's pair has vanished it recreates it in the host netns exactly as recorded.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from sriov.emulate import showcase, wiring
from sriov.emulate import spec as names
from sriov.emulate.profiles import PROFILES
from sriov.emulate.spec import (
    STATE_FILE,
    EmulationSpec,
    EmulationState,
    PfRecord,
    VfLocation,
    VfRecord,
)
from sriov.emulate.tree import PfSpec, SysfsTreeBuilder
from sriov.emulate.vfadmin import SETTINGS_DIR, EmulatedVfAdmin, load_state, write_atomic
from sriov.errors import EmulationError
from sriov.netlink import Netlink
from sriov.types import IfName, PciAddress
from sriov.validate import pci_address

log = logging.getLogger(__name__)

DEFAULT_ROOT = Path("/run/sriov-emu")
FIRST_BUS = 0x3B


def plan(spec: EmulationSpec) -> EmulationState:
    """Decide PCI addresses, names and MACs for ``spec`` (pure)."""
    profile = PROFILES[spec.profile.value]
    total = max(profile.max_vfs, spec.vfs)
    # Two ports per device (functions .0/.1); each device gets enough buses for its VFs.
    buses_per_device = max(1, (profile.vf_offset + 2 * total * profile.vf_stride) // 256 + 2)
    pfs: list[PfRecord] = []
    vfs: list[VfRecord] = []
    for p in range(spec.pfs):
        bus = FIRST_BUS + (p // 2) * buses_per_device
        if bus > 0xFF:
            raise EmulationError(f"{spec.pfs} PFs with {spec.vfs} VFs do not fit PCI domain 0000")
        address = pci_address(f"0000:{bus:02x}:00.{p % 2}")
        pfs.append(PfRecord(index=p, address=address, netdev=names.pf_netdev(spec, p),
                            wire=names.pf_wire(spec, p), mac=names.pf_mac(spec, p),
                            numa_node=spec.numa_node(p)))
    return EmulationState(spec=spec, pfs=tuple(pfs), vfs=tuple(vfs))


def _vf_record(state: EmulationState, pf: PfRecord, index: int, address: PciAddress,
               vfio: bool) -> VfRecord:
    spec = state.spec
    profile = PROFILES[spec.profile.value]
    if not spec.netdevs:
        location = VfLocation.ABSENT
    else:
        location = VfLocation.PARKED if vfio else VfLocation.HOST
    return VfRecord(pf=pf.index, pf_address=pf.address, index=index, address=address,
                    wire=names.vf_wire(spec, pf.index, index),
                    driver="vfio-pci" if vfio else profile.vf_driver, location=location,
                    netdev=names.vf_netdev(spec, pf.index, index),
                    mac=names.vf_mac(spec, pf.index, index), mtu=spec.mtu)


LOCK_FILE = ".sriov-emu.lock"


@contextlib.contextmanager
def locked(root: Path) -> Iterator[None]:
    """Serialise changes to one emulated host (CNI, device plugin and sriovctl may race)."""
    fd = os.open(root / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def save_state(root: Path, state: EmulationState) -> None:
    write_atomic(root / STATE_FILE, json.dumps(state.to_json(), indent=1) + "\n")


def up(root: Path, spec: EmulationSpec, netlink: Netlink) -> EmulationState:
    """Build the emulated host under ``root``; on any failure, tear down what was built."""
    if (root / STATE_FILE).exists() or (root / "sys").exists():
        raise EmulationError(f"{root} already holds an emulated host; "
                             f"run 'sriovctl emulate down --root {root}' first")
    if spec.netdevs and netlink.link(spec.bridge) is not None:
        raise EmulationError(f"bridge {spec.bridge} already exists: another emulated host "
                             "uses these names (pick other prefixes)")
    root.mkdir(parents=True, exist_ok=True)
    state = plan(spec)
    save_state(root, state)  # first, so that `down` can always find what to remove
    try:
        state = _build(root, state, netlink)
    except BaseException:
        log.warning("emulate up failed under %s; removing what was built", root)
        down(root, netlink)
        raise
    save_state(root, state)
    log.info("emulated host up at %s: %s PFs x %s VFs (%s)", root, spec.pfs, spec.vfs,
             spec.profile.value)
    return state


def _build(root: Path, state: EmulationState, netlink: Netlink) -> EmulationState:
    spec = state.spec
    profile = PROFILES[spec.profile.value]
    tree = SysfsTreeBuilder(root)
    if spec.noiommu:
        tree.set_noiommu_mode(True)
    links = wiring.Wiring(netlink, spec.bridge)
    if spec.netdevs:
        links.create_bridge()
    for pf in state.pfs:
        vfio = {i: "vfio-pci" for i in range(spec.vfs) if spec.starts_on_vfio(i)}
        vf_names = None if spec.netdevs else tuple(
            None if i in vfio else names.vf_netdev(spec, pf.index, i) for i in range(spec.vfs))
        built = tree.add_pf(PfSpec(
            address=pf.address, ifname=None if spec.netdevs else pf.netdev, profile=profile,
            num_vfs=spec.vfs, total_vfs=max(profile.max_vfs, spec.vfs),
            numa_node=-1 if pf.numa_node is None else pf.numa_node, mtu=spec.mtu, mac=pf.mac,
            vf_ifnames=vf_names, vf_drivers=vfio))
        if spec.netdevs:
            links.create_pair(pf.netdev, pf.wire, mac=pf.mac, mtu=spec.mtu, carrier=True)
            wiring.sync_netdev(tree, pf.address, netlink.link(pf.netdev))
        records = [_vf_record(state, pf, i, addr, i in vfio)
                   for i, addr in enumerate(built.vf_addresses)]
        state = dataclasses.replace(state, vfs=state.vfs + tuple(records))
        save_state(root, state)
        for vf in records:
            if vf.location is VfLocation.HOST:
                links.create_pair(vf.netdev, vf.wire, mac=vf.mac, mtu=vf.mtu, carrier=True)
                wiring.sync_netdev(tree, vf.address, netlink.link(vf.netdev))
    if spec.classes:
        for line in showcase.add(tree, state):
            log.info("emulated %s", line)
    return state


def down(root: Path, netlink: Netlink) -> None:
    """Remove every link, the bridge and the tree. Works on half-built hosts too."""
    try:
        state: EmulationState | None = load_state(root)
    except EmulationError as e:
        if not (root / "sys").exists():
            raise
        log.warning("%s; removing the tree only", e)
        state = None
    if state is not None and state.spec.netdevs:
        for wire in [p.wire for p in state.pfs] + [v.wire for v in state.vfs]:
            # Deleting the wire end deletes its peer, wherever that peer lives now.
            netlink.delete_if_exists(wire)
        for vf in state.vfs:
            # A pair recreated by hand or left by a crash: the VF end alone.
            if vf.location is VfLocation.HOST:
                _delete_if_ours(netlink, vf.netdev, vf.mac)
        for pf in state.pfs:
            _delete_if_ours(netlink, pf.netdev, pf.mac)
        for bridge in wiring.Wiring(netlink, state.spec.bridge).bridges():
            netlink.delete_if_exists(bridge)
    SysfsTreeBuilder(root).remove_tree()
    shutil.rmtree(root / SETTINGS_DIR, ignore_errors=True)
    (root / STATE_FILE).unlink(missing_ok=True)
    (root / LOCK_FILE).unlink(missing_ok=True)
    log.info("emulated host at %s is down", root)


def _delete_if_ours(netlink: Netlink, name: str, mac: str) -> None:
    link = netlink.link(name)
    if link is not None and link.kind == "veth" and link.mac == mac:
        netlink.delete_if_exists(name)


def refresh(root: Path, netlink: Netlink, class_net: Path = wiring.CLASS_NET) -> EmulationState:
    """Re-sync the tree's netdev entries with where the VF/PF netdevs really are.

    Host-netns links are read from the live ``class_net`` (cheap); netlink is used
    only for VF netdevs sitting in another netns and for recreating vanished pairs.
    """
    load_state(root)  # a clear error before creating a lock file in a wrong directory
    with locked(root):
        return refresh_holding_lock(root, netlink, class_net)


def refresh_holding_lock(root: Path, netlink: Netlink, class_net: Path) -> EmulationState:
    """:func:`refresh` for callers that already hold :func:`locked`."""
    state = load_state(root)
    if not state.spec.netdevs:
        return state
    tree = SysfsTreeBuilder(root)
    links = wiring.Wiring(netlink, state.spec.bridge)
    changed = False
    for pf in state.pfs:
        wiring.sync_netdev(tree, pf.address, wiring.read_host_link(class_net, pf.netdev))
    for vf in state.vfs:
        new = _sync_vf(root, state, vf, tree, links, class_net)
        if new != vf:
            state, changed = state.with_vf(new), True
    if changed:
        save_state(root, state)
    return state


def sync_vf(root: Path, netlink: Netlink, address: str,
            class_net: Path = wiring.CLASS_NET) -> None:
    """:func:`refresh` of one VF: its ``net/`` entry as the kernel would show it right now."""
    with locked(root):
        state = load_state(root)
        vf = next((v for v in state.vfs if v.address == address), None)
        if vf is None or not state.spec.netdevs:
            return
        new = _sync_vf(root, state, vf, SysfsTreeBuilder(root),
                       wiring.Wiring(netlink, state.spec.bridge), class_net)
        if new != vf:
            save_state(root, state.with_vf(new))


def _sync_vf(root: Path, state: EmulationState, vf: VfRecord, tree: SysfsTreeBuilder,
             links: wiring.Wiring, class_net: Path) -> VfRecord:
    """Where ``vf``'s netdev is now (recreated in the host if its netns took it away)."""
    if vf.location in (VfLocation.PARKED, VfLocation.ABSENT):
        return vf
    wire = wiring.read_host_link(class_net, vf.wire)
    if wire is None:
        new = _recreate(root, state, vf, links)
        peer = wiring.read_host_link(class_net, new.netdev)
    else:
        peer = wiring.host_peer(class_net, wire)
        new = _observe(vf, peer, links.netlink)
    wiring.sync_netdev(tree, vf.address, peer if new.location is VfLocation.HOST else None)
    return new


def _observe(vf: VfRecord, host_peer: wiring.LinkInfo | None, netlink: Netlink) -> VfRecord:
    """Where the VF netdev is now, with its current name/MAC/MTU."""
    if host_peer is not None:
        return dataclasses.replace(vf, location=VfLocation.HOST, netdev=host_peer.name,
                                   mac=host_peer.mac or vf.mac, mtu=host_peer.mtu)
    wire = netlink.link(vf.wire)  # netlink knows the peer's netns id; sysfs does not
    peer = wiring.peer_in_other_netns(netlink, wire) if wire is not None else None
    if peer is None:  # mid-move, or its netns is being torn down: keep the last name
        return dataclasses.replace(vf, location=VfLocation.NETNS)
    return dataclasses.replace(vf, location=VfLocation.NETNS, netdev=peer.name,
                               mac=peer.mac or vf.mac, mtu=peer.mtu)


def _recreate(root: Path, state: EmulationState, vf: VfRecord, links: wiring.Wiring) -> VfRecord:
    """The pair vanished with its netns: bring the VF netdev back as the kernel would."""
    name = IfName(links.free_name(vf.netdev))
    log.info("VF %s netdev %s vanished (netns deleted); recreating it in the host netns as %s",
             vf.address, vf.netdev, name)
    wiring.attach_vf(root, state, dataclasses.replace(vf, netdev=name), links)
    return dataclasses.replace(vf, location=VfLocation.HOST, netdev=name)


def host_is_emulated(root: Path) -> bool:
    return (root / STATE_FILE).is_file()


def vf_admin(root: Path, netlink: Netlink) -> EmulatedVfAdmin:
    return EmulatedVfAdmin(root, wiring.Wiring(netlink, load_state(root).spec.bridge))
