"""``sriovctl nad``: print a NetworkAttachmentDefinition for one resource pool.

The pool comes from a sriov-network-device-plugin config file; the NAD's
``k8s.v1.cni.cncf.io/resourceName`` annotation is the pool's full resource name, so
Multus injects the VF that kubelet allocated from that pool as ``deviceID``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from sriov.errors import InvalidInputError
from sriov.nad import IpamKind, NadOptions, OnOff, build_nad, default_nad_name, render_yaml
from sriov.pools import ResourcePool, load_pool_config
from sriov.types import UIO_DRIVERS, VFIO_DRIVERS

log = logging.getLogger(__name__)

DEFAULT_POOL_CONFIG = Path("/etc/pcidp/config.json")
DPDK_DRIVERS = VFIO_DRIVERS | UIO_DRIVERS


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "nad", help="print a NetworkAttachmentDefinition for a resource pool",
        description="Print a Multus NetworkAttachmentDefinition (YAML) whose resourceName "
                    "annotation ties it to one device-plugin pool.")
    p.add_argument(
        "--pool",
        required=True,
        help="pool resource name, e.g. intel.com/sriov_netdevice (or the bare name if unique)",
    )
    p.add_argument("--config", type=Path, default=DEFAULT_POOL_CONFIG,
                   help=f"device-plugin pool config (default: {DEFAULT_POOL_CONFIG})")
    p.add_argument("--name", help="NAD name (default: derived from the pool name)")
    p.add_argument("--namespace", default="default", help="NAD namespace (default: default)")
    p.add_argument(
        "--vlan", type=int, help="VLAN id 0-4094 set on the VF (omitted: left untouched)"
    )
    p.add_argument("--ipam", choices=[k.value for k in IpamKind],
                   help="IPAM plugin (default: host-local with --subnet; none for DPDK pools)")
    p.add_argument("--subnet", help="host-local subnet CIDR, e.g. 10.56.217.0/24")
    p.add_argument("--address", help="static address CIDR, e.g. 10.56.217.10/24")
    p.add_argument("--mtu", type=int, help="MTU of the pod interface")
    p.add_argument("--spoofchk", choices=[v.value for v in OnOff], help="VF MAC spoof check")
    p.add_argument("--trust", choices=[v.value for v in OnOff], help="VF trusted mode")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, stdout: TextIO | None = None) -> int:
    pools = _load_pools(args.config)
    full_name, dpdk = find_pool(pools, args.pool)
    opts = NadOptions(
        name=args.name or default_nad_name(full_name),
        namespace=args.namespace,
        resource_name=full_name,
        dpdk=dpdk,
        ipam=IpamKind(args.ipam) if args.ipam else None,
        subnet=args.subnet,
        address=args.address,
        vlan=args.vlan,
        mtu=args.mtu,
        spoofchk=OnOff(args.spoofchk) if args.spoofchk else None,
        trust=OnOff(args.trust) if args.trust else None,
    )
    out = stdout if stdout is not None else sys.stdout
    out.write(render_yaml(build_nad(opts)))
    return 0


def _load_pools(path: Path) -> Sequence[tuple[str, bool]]:
    """``(full resource name, is DPDK)`` for every pool in the config file."""
    config = load_pool_config(path)
    return [(pool.full_name, pool_is_dpdk(pool)) for pool in config.pools]


def pool_is_dpdk(pool: ResourcePool) -> bool:
    """A pool whose selectors only accept vfio-pci/uio drivers hands out DPDK VFs."""
    drivers = {driver for selector in pool.selectors for driver in selector.drivers}
    return bool(drivers) and drivers <= DPDK_DRIVERS


def find_pool(pools: Sequence[tuple[str, bool]], wanted: str) -> tuple[str, bool]:
    """Match ``wanted`` against full names, then against unique bare names."""
    for full_name, dpdk in pools:
        if full_name == wanted:
            return full_name, dpdk
    bare = [(f, d) for f, d in pools if f.rsplit("/", 1)[-1] == wanted]
    if len(bare) == 1:
        return bare[0]
    known = ", ".join(sorted(f for f, _ in pools)) or "(none)"
    reason = "is ambiguous" if bare else "is not in the pool config"
    raise InvalidInputError("--pool", wanted, f"{reason}; pools: {known}")
