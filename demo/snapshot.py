"""What "nothing leaked" means, as data: a before/after picture of the host and its diff.

:func:`take` reads the emulated host (VF netdev names, MACs, MTUs, PF-side VF settings), the
named netns, the CNI state dir (attachment and VF-owner records) and the IPAM lease dir.
:func:`differences` is pure and returns one human sentence per difference.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import subprocess
from pathlib import Path

from sriov.host import open_host
from sriov.netlink import Netlink
from sriov.types import VfState


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class VfPicture:
    address: str
    netdev: str | None
    mac: str | None
    mtu: int | None
    pf_side: VfState | None
    """PF-side admin state (MAC, VLAN, spoofchk, trust, rates)."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class HostPicture:
    vfs: tuple[VfPicture, ...]
    netns: frozenset[str]
    """Named netns (informational: other tools may add theirs; the demo checks its pods')."""
    state_files: tuple[str, ...]
    leases: tuple[str, ...]


def named_netns() -> frozenset[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False)
    return frozenset(line.split()[0] for line in out.stdout.splitlines() if line.strip())


def state_records(state_dir: Path) -> tuple[str, ...]:
    """Attachment records and VF-owner records (lock files are not state)."""
    if not state_dir.is_dir():
        return ()
    found = [p.name for p in state_dir.iterdir() if p.is_file() and not p.name.startswith(".")]
    owners = state_dir / "pci" / "owner"
    if owners.is_dir():
        found += [f"pci/owner/{p.name}" for p in owners.iterdir()]
    return tuple(sorted(found))


def lease_files(ipam_dir: Path) -> tuple[str, ...]:
    """host-local reservations: files named by an IP address under ``<dataDir>/<network>/``."""
    leases = []
    for path in ipam_dir.rglob("*") if ipam_dir.is_dir() else ():
        try:
            ipaddress.ip_address(path.name)
        except ValueError:
            continue
        leases.append(str(path.relative_to(ipam_dir)))
    return tuple(sorted(leases))


def take(root: Path, netlink: Netlink, state_dir: Path, ipam_dir: Path) -> HostPicture:
    host = open_host(root, netlink)
    host.refresh()
    inventory = host.sysfs.inventory()
    vfs = []
    for vf in inventory.vfs:
        link = netlink.link(vf.netdev) if vf.netdev else None
        pf_side = host.vf_admin.read(vf.pf_netdev, vf.index) if vf.pf_netdev else None
        vfs.append(VfPicture(address=vf.address, netdev=vf.netdev,
                             mac=link.mac if link else None, mtu=link.mtu if link else None,
                             pf_side=pf_side))
    return HostPicture(vfs=tuple(vfs), netns=named_netns(), state_files=state_records(state_dir),
                       leases=lease_files(ipam_dir))


def differences(before: HostPicture, after: HostPicture) -> list[str]:
    """Everything that differs, one sentence each; empty means nothing leaked."""
    problems = []
    old = {v.address: v for v in before.vfs}
    new = {v.address: v for v in after.vfs}
    for address in sorted(old.keys() | new.keys()):
        a, b = old.get(address), new.get(address)
        if a is None or b is None:
            problems.append(f"VF {address} {'appeared' if a is None else 'disappeared'}")
            continue
        for field in ("netdev", "mac", "mtu", "pf_side"):
            if getattr(a, field) != getattr(b, field):
                problems.append(f"VF {address} {field}: {getattr(a, field)} -> {getattr(b, field)}")
    problems += [f"CNI state file {f} left behind" for f in after.state_files]
    problems += [f"IPAM lease {f} left behind" for f in after.leases]
    return problems
