"""The real links behind the emulated host: veth pairs, bridges, port VLANs.

All kernel access goes through :class:`sriov.netlink.Netlink`. :class:`Wiring` is
also the ``WirePorts`` the emulated VF admin enforces settings with, and
:func:`sync_netdev` copies a real link's name/ifindex/MAC/MTU/carrier into the tree.
"""

from __future__ import annotations

import logging
import socket
from pathlib import Path

from sriov.emulate.spec import MAX_MTU, EmulationState, VfLocation, VfRecord, vlan_bridge
from sriov.emulate.tree import SysfsTreeBuilder
from sriov.emulate.vfadmin import EmulatedVfAdmin
from sriov.errors import EmulationError, SriovError
from sriov.netlink import LinkInfo, Netlink
from sriov.sysfs_classes import net_dir
from sriov.types import IfName, LinkState, MacAddress

__all__ = [
    "CLASS_NET", "LinkInfo", "Wiring", "attach_vf", "host_peer", "peer_in_other_netns",
    "read_host_link", "sync_netdev",
]

log = logging.getLogger(__name__)

CLASS_NET = Path("/sys/class/net")
"""The live kernel's view of the host netns (real default; a parameter of refresh)."""
WIRE_MTU = MAX_MTU
"""Wire ends and the bridge take the largest MTU, so a pod may raise its VF's MTU."""


class Wiring:
    """Creates and adjusts the links of one emulated host (bridge ``bridge``)."""

    def __init__(self, netlink: Netlink, bridge: str) -> None:
        self.netlink = netlink
        self.bridge = bridge

    def create_bridge(self, name: str | None = None) -> None:
        # One plain bridge per VLAN rather than one VLAN-filtering bridge: filtering
        # needs CONFIG_BRIDGE_VLAN_FILTERING, which not every kernel (this VM's) has.
        name = name or self.bridge
        self.netlink.create_bridge(name)
        self.netlink.set_mtu(name, WIRE_MTU)
        self.netlink.set_up(name)

    def bridges(self) -> list[str]:
        """Every bridge of this host: the untagged one and the per-VLAN ones."""
        return [link.name for link in self.netlink.links() if link.kind == "bridge" and (
            link.name == self.bridge or (link.name.startswith(f"{self.bridge}v")
                                         and link.name[len(self.bridge) + 1:].isdigit()))]

    def create_pair(self, name: str, wire: str, *, mac: str, mtu: int, carrier: bool,
                    up: bool = True) -> LinkInfo:
        """Create netdev ``name`` and its wire end on the bridge; returns the netdev's link.

        The netdev is admin-up; its carrier follows the wire end's admin state, which
        is how the emulation turns "PF link down" into carrier loss.
        """
        self.netlink.create_veth(name, wire)
        self.netlink.set_mac(name, mac)
        self.netlink.set_mtu(wire, WIRE_MTU)
        self.netlink.set_mtu(name, mtu)
        self.netlink.set_master(wire, self.bridge)
        if carrier:
            self.netlink.set_up(wire)
        if up:
            self.netlink.set_up(name)
        link = self.netlink.link(name)
        if link is None:
            raise EmulationError(f"veth {name} vanished right after it was created")
        return link

    def free_name(self, wanted: str) -> str:
        """``wanted`` if unused in the host netns, else a ``dev<N>`` name (kernel style)."""
        if self.netlink.link(wanted) is None:
            return wanted
        n = 0
        while self.netlink.link(f"dev{n}") is not None:
            n += 1
        return f"dev{n}"

    # -- WirePorts (sriov.emulate.vfadmin) -------------------------------------------
    def set_port_vlan(self, wire: IfName, vid: int, previous: int) -> None:
        bridge = vlan_bridge(self.bridge, vid)
        if self.netlink.link(bridge) is None:
            self.create_bridge(bridge)
        self.netlink.set_master(wire, bridge)
        log.debug("wire %s moved from VLAN %s to VLAN %s (%s)", wire, previous, vid, bridge)

    def set_port_up(self, wire: IfName, up: bool) -> None:
        if up:
            self.netlink.set_up(wire)
        else:
            self.netlink.set_down(wire)

    def set_vf_mac(self, record: VfRecord, mac: MacAddress) -> None:
        # A real VF driver picks up the admin MAC on its next reset; we apply it when the
        # netdev is in the host netns (a pod-side VF keeps its MAC until it returns).
        if record.location is VfLocation.HOST and self.netlink.link(record.netdev) is not None:
            self.netlink.set_mac(record.netdev, mac)


def peer_in_other_netns(netlink: Netlink, wire: LinkInfo) -> LinkInfo | None:
    """The wire's veth peer in the netns the host knows as ``wire.netns_id``, unentered.

    RTM_GETLINK with IFLA_TARGET_NETNSID (kernel >= 4.20), so refresh never enters a pod netns.
    """
    if wire.link_index is None or wire.netns_id is None or wire.netns_id < 0:
        return None  # -1 (NETNSA_NSID_NOT_ASSIGNED): the peer's netns is being torn down
    try:
        return netlink.link_by_index(wire.link_index, target_nsid=wire.netns_id)
    except SriovError as e:  # the peer (or its netns) is going away
        log.debug("peer of %s not readable: %s", wire.name, e)
        return None


def sync_netdev(tree: SysfsTreeBuilder, address: str, link: LinkInfo | None) -> None:
    """Make ``net/`` of PCI device ``address`` show ``link`` (``None``: no netdev here).

    Files are rewritten only when they differ, so a refresh with no change is cheap.
    """
    net = Path(net_dir(str(tree.sys / "bus/pci/devices" / address)))  # virtio: virtioN/net
    entries = sorted(p.name for p in net.iterdir()) if net.is_dir() else []
    if link is None:
        if entries:
            tree.set_netdev(address, None)
        return
    current = net / link.name
    if entries != [link.name] or _read(current / "ifindex") != str(link.index):
        if entries:
            tree.set_netdev(address, None)
        tree.set_netdev(address, link.name, mac=link.mac, mtu=link.mtu, ifindex=link.index)
    elif _read(current / "address") != link.mac or _read(current / "mtu") != str(link.mtu):
        tree.set_netdev(address, link.name, mac=link.mac, mtu=link.mtu)
    if _read(current / "carrier") != ("1" if link.carrier else "0"):
        tree.set_carrier(link.name, link.carrier)


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def attach_vf(root: Path, state: EmulationState, vf: VfRecord, links: Wiring) -> LinkInfo:
    """Create the veth pair of ``vf`` (netdev named ``vf.netdev``) with its PF-side settings.

    The VF VLAN becomes the wire port's PVID and the wire is up unless the VF's
    link_state (or, for ``auto``, its PF's carrier) says down. ``vf`` must already be
    in the state file under ``root``.
    """
    pf = state.pfs[vf.pf]
    settings = EmulatedVfAdmin(root, links).read(pf.netdev, vf.index)
    carrier = settings.link_state is LinkState.ENABLE or (
        settings.link_state is not LinkState.DISABLE and pf.carrier)
    link = links.create_pair(vf.netdev, vf.wire, mac=vf.mac, mtu=vf.mtu, carrier=carrier)
    if settings.vlan:
        links.set_port_vlan(vf.wire, settings.vlan, 0)
    return link


def read_host_link(class_net: Path, name: str) -> LinkInfo | None:
    """A host-netns link as the live ``/sys/class/net`` shows it (~20x cheaper than netlink).

    ``link_index`` is ``iflink`` (a veth's peer ifindex); ``netns_id`` is unknown here.
    """
    base = class_net / name
    ifindex = _read(base / "ifindex")
    if not ifindex:
        return None
    carrier = _read(base / "carrier") == "1"  # EINVAL (admin down) reads as no carrier
    iflink = _read(base / "iflink")
    return LinkInfo(index=int(ifindex), name=IfName(name), kind=None,
                    mac=MacAddress(_read(base / "address")) or None,
                    mtu=int(_read(base / "mtu") or 0), up=_read(base / "operstate") != "down",
                    carrier=carrier, operstate=_read(base / "operstate"), alias=None,
                    altnames=(), master_index=None,
                    link_index=int(iflink) if iflink and iflink != ifindex else None,
                    netns_id=None, parent_bus=None, parent_dev=None)


def host_peer(class_net: Path, wire: LinkInfo) -> LinkInfo | None:
    """The wire's veth peer if it is in the host netns (its ``iflink`` points back)."""
    if wire.link_index is None:
        return None
    try:
        name = socket.if_indextoname(wire.link_index)
    except OSError:
        return None
    peer = read_host_link(class_net, name)
    return peer if peer is not None and peer.link_index == wire.index else None
