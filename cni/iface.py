"""The pod interface of every mode: sysctls, addresses and routes from a CNI result (libcni
``ConfigureIface``), the result's interface list, CHECK of the addresses, and removal.

Shared by the VF and fallback modes so that both configure a result the same way (routes with
their ``priority`` and ``table``). Helpers around an injected :class:`sriov.netlink.Netlink`;
nothing here picks a netns or a link: the caller passes them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import ipaddress
import logging
import socket
import struct
from pathlib import Path
from typing import Any

from cni.errors import CniCode, CniError
from cni.protocol import Result
from sriov.errors import DeviceNotFoundError

log = logging.getLogger(__name__)
PROC_SYS = Path("/proc/sys")
NOTIFY_SYSCTLS = ("net/ipv4/conf/{if}/arp_notify", "net/ipv6/conf/{if}/ndisc_notify")


def write_notify_sysctls(netlink: Any, netns: str, ifname: str, proc_sys: Path = PROC_SYS) -> None:
    """``arp_notify=1`` and ``ndisc_notify=1`` for ``ifname`` (one setns thread for both).

    A missing IPv6 tree (ipv6 disabled) is not an error, as in the reference plugins.
    """
    netlink.run_in_netns(netns, lambda: _write_sysctls(ifname, proc_sys))


def _write_sysctls(ifname: str, proc_sys: Path) -> None:
    for template in NOTIFY_SYSCTLS:
        path = proc_sys / template.format(**{"if": ifname})
        try:
            path.write_text("1")
        except FileNotFoundError:
            log.debug("sysctl %s not present; skipping", path)


@dataclasses.dataclass(frozen=True, slots=True)
class LinkFacts:
    """What ADD reports and addresses a link by, read with ioctls in the link's netns."""

    index: int
    mac: str
    mtu: int


def prepare_in_netns(netlink: Any, netns: str, ifname: str,
                     proc_sys: Path = PROC_SYS) -> LinkFacts:
    """:func:`write_notify_sysctls`, and the link's ifindex, MAC and MTU, in one setns thread.

    The ioctls (SIOCGIFINDEX/SIOCGIFHWADDR/SIOCGIFMTU) cost microseconds where an RTM_GETLINK
    and its parse cost about half a millisecond of Python per request; the same thread also
    opens the netns's netlink socket for the requests that follow."""
    def run() -> LinkFacts:
        _write_sysctls(ifname, proc_sys)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            return _link_facts(sock, ifname)

    facts: LinkFacts = netlink.run_in_netns(netns, run)
    return facts


SIOCGIFHWADDR, SIOCGIFINDEX, SIOCGIFMTU = 0x8927, 0x8933, 0x8921


def _link_facts(sock: socket.socket, ifname: str) -> LinkFacts:
    def ifreq(request: int) -> bytes:
        try:
            return fcntl.ioctl(sock.fileno(), request, struct.pack("16s24x", ifname.encode()))
        except OSError as e:
            raise DeviceNotFoundError("netdev", ifname, f"ioctl: {e.strerror}") from None

    index = struct.unpack_from("=i", ifreq(SIOCGIFINDEX), 16)[0]
    mac = ":".join(f"{b:02x}" for b in ifreq(SIOCGIFHWADDR)[18:24])
    mtu = struct.unpack_from("=i", ifreq(SIOCGIFMTU), 16)[0]
    return LinkFacts(index=index, mac=mac, mtu=mtu)


def _family_gateways(result: Result) -> dict[int, str]:
    gateways: dict[int, str] = {}
    for ip in result.ips:
        if ip.gateway and ip.family not in gateways:
            gateways[ip.family] = ip.gateway
    return gateways


def configure(netlink: Any, netns: str, link: str | int, result: Result) -> None:
    """Add every address of ``result`` to ``link``, then its routes (gw defaults per family).

    ``link`` is a name or an ifindex; an ifindex saves one lookup per address and route."""
    for ip in result.ips:
        netlink.add_address(link, ip.address, netns)
    gateways = _family_gateways(result)
    for route in result.routes:
        gw = route.gw or gateways.get(route.family) or None
        netlink.add_route(route.dst, gw, link, netns, metric=route.priority or None,
                          table=route.table)


def with_interface(result: Result, interface: Any) -> Result:
    """The IPAM result with ``interfaces = [interface]`` and every ``ips[].interface = 0``."""
    import dataclasses

    ips = tuple(dataclasses.replace(ip, interface=0) for ip in result.ips)
    return dataclasses.replace(result, interfaces=(interface,), ips=ips)


def check_addresses(netlink: Any, netns: str, ifname: str, prev: Result, iface_index: int) -> None:
    """Every prevResult address that belongs to our interface must be on the link."""
    present = {ipaddress.ip_interface(a.cidr) for a in netlink.addresses(ifname, netns)}
    for ip in prev.ips:
        if ip.interface is not None and ip.interface != iface_index:
            continue
        if ipaddress.ip_interface(ip.address) not in present:
            raise CniError(
                CniCode.ATTACHMENT_CHANGED,
                f"CHECK: address {ip.address} missing on {ifname}",
                "present: " + ", ".join(sorted(str(p) for p in present)),
            )


def delete_link_in_netns(netlink: Any, netns: str, ifname: str | int) -> bool:
    """Delete ``ifname`` (a name or an ifindex) in ``netns``; ``False`` when the netns or the
    link is already gone."""
    if not netns or not Path(netns).exists():
        return False
    try:
        return bool(netlink.delete_if_exists(ifname, netns))
    except DeviceNotFoundError:  # the netns vanished between the check and the request
        return False
    finally:
        with contextlib.suppress(Exception):
            netlink.forget_netns(netns)
