"""CNI CHECK for the VF and DPDK modes: the attachment must still be as ADD left it."""

from __future__ import annotations

import ipaddress
import logging
from typing import Any

from cni.errors import CniCode, CniError
from cni.mode import AttachmentContext, require_netns
from cni.record import AttachmentRecord
from sriov.types import IfName, VfSettings
from sriov.vfadmin import VfAdmin, diff

log = logging.getLogger(__name__)


def _drift(what: str, details: str) -> CniError:
    return CniError(CniCode.ATTACHMENT_CHANGED, what, details)


def _expected_interface(record: AttachmentRecord) -> dict[str, Any]:
    for iface in record.result.interfaces if record.result else ():
        if iface.name == record.ifname and (iface.pci_id or record.device_id) == record.device_id:
            return {"mac": iface.mac, "mtu": iface.mtu}
    return {}


def check_interface(nl: Any, ctx: AttachmentContext, record: AttachmentRecord) -> None:
    """Interface present in the netns with the cached name, MAC, MTU, up; prevResult IPs on it."""
    netns, ifname = require_netns(ctx.args.netns), ctx.args.ifname
    link = nl.link(ifname, netns)
    if link is None:
        raise _drift(f"interface {ifname} is missing from {netns}",
                     f"VF {record.device_id} was attached as {ifname}")
    want = _expected_interface(record)
    problems = []
    if want.get("mac") and link.mac != want["mac"]:
        problems.append(f"mac: expected {want['mac']}, found {link.mac}")
    if want.get("mtu") and link.mtu != want["mtu"]:
        problems.append(f"mtu: expected {want['mtu']}, found {link.mtu}")
    if not link.up:
        problems.append("admin state: expected up, found down")
    present = {ipaddress.ip_interface(a.cidr) for a in nl.addresses(ifname, netns)}
    for ip in _our_ips(ctx, ifname):
        if ipaddress.ip_interface(ip) not in present:
            problems.append(f"address {ip} missing")
    if problems:
        raise _drift(f"interface {ifname} changed since ADD", "; ".join(problems))


def _our_ips(ctx: AttachmentContext, ifname: str) -> list[str]:
    prev = ctx.conf.prev_result
    if prev is None:
        return []
    ours = {i for i, iface in enumerate(prev.interfaces) if iface.name == ifname}
    return [ip.address for ip in prev.ips if ip.interface is None or ip.interface in ours]


def check_pf_settings(admin: VfAdmin, wanted: VfSettings, record: AttachmentRecord) -> None:
    """The PF-side settings the config asks for still hold (``vfadmin.diff``)."""
    assert record.vf is not None
    current = admin.read(IfName(record.vf.pf), record.vf.vf_index)
    mismatches = diff(wanted, current)
    if mismatches:
        raise CniError(CniCode.VF_SETTING, f"VF {record.device_id} settings changed since ADD",
                       "; ".join(mismatches))
