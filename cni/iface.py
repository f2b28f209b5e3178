"""The pod interface of every mode: sysctls, addresses and routes from a CNI result (libcni
``ConfigureIface``), the result's interface list, CHECK of the addresses, and removal.

Shared by the VF and fallback modes so that both configure a result the same way (routes with
their ``priority`` and ``table``). Helpers around an injected :class:`sriov.netlink.Netlink`;
nothing here picks a netns or a link: the caller passes them.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
from pathlib import Path
from typing import Any

from cni.errors import CniCode, CniError
from cni.protocol import Result

log = logging.getLogger(__name__)
PROC_SYS = Path("/proc/sys")
NOTIFY_SYSCTLS = ("net/ipv4/conf/{if}/arp_notify", "net/ipv6/conf/{if}/ndisc_notify")


def write_notify_sysctls(netlink: Any, netns: str, ifname: str, proc_sys: Path = PROC_SYS) -> None:
    """``arp_notify=1`` and ``ndisc_notify=1`` for ``ifname`` (one setns thread for both).

    A missing IPv6 tree (ipv6 disabled) is not an error, as in the reference plugins.
    """
    def write() -> None:
        for template in NOTIFY_SYSCTLS:
            path = proc_sys / template.format(**{"if": ifname})
            try:
                path.write_text("1")
            except FileNotFoundError:
                log.debug("sysctl %s not present; skipping", path)

    netlink.run_in_netns(netns, write)


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


def delete_link_in_netns(netlink: Any, netns: str, ifname: str) -> bool:
    """Delete ``ifname`` in ``netns``; ``False`` when the netns or the link is already gone."""
    from sriov.errors import DeviceNotFoundError

    if not netns or not Path(netns).exists():
        return False
    try:
        return bool(netlink.delete_if_exists(ifname, netns))
    except DeviceNotFoundError:  # the netns vanished between the check and the request
        return False
    finally:
        with contextlib.suppress(Exception):
            netlink.forget_netns(netns)
