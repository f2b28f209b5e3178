"""``sriovctl pools``: check a device-plugin pool config against this host's VFs.

Validates the config (exit 2, every problem listed, on a bad one), discovers the
inventory under ``--sysfs-root`` and shows which VFs each pool gets and, for every
VF that no pool selected, why not.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from sriov.errors import PoolConfigError
from sriov.pools import DEFAULT_RESOURCE_PREFIX, Selection, load_pool_config, select
from sriov.sysfs import SysfsReader
from sriov.types import DeviceClass, Inventory, PciAddress, VirtualFunction

DEFAULT_SYSFS_ROOT = Path("/")
EXIT_BAD_CONFIG = 2


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "pools", help="show which VFs each resource pool of a device-plugin config selects",
        description="Validate a sriov-network-device-plugin style config (resourceList) and "
                    "show the VFs each pool selects on this host, plus why every other VF "
                    "is in no pool. Exit 2 on an invalid config.")
    p.add_argument("--config", required=True, type=Path, metavar="FILE",
                   help="pool config JSON (e.g. /etc/pcidp/config.json)")
    p.add_argument("--sysfs-root", type=Path, default=DEFAULT_SYSFS_ROOT, metavar="PATH",
                   help="root holding sys/bus/pci and sys/class/net (default: /)")
    p.add_argument("--resource-prefix", default=DEFAULT_RESOURCE_PREFIX,
                   help=f"prefix of pools without resourcePrefix (default: "
                        f"{DEFAULT_RESOURCE_PREFIX})")
    p.add_argument("--strict-config", action="store_true",
                   help="treat what upstream accepts but looks wrong (unknown keys, values "
                        "that never match, malformed '#' ranges) as errors, not warnings")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, stdout: TextIO | None = None,
        stderr: TextIO | None = None) -> int:
    out = sys.stdout if stdout is None else stdout
    err = sys.stderr if stderr is None else stderr
    try:
        config = load_pool_config(args.config, default_prefix=args.resource_prefix,
                                  strict=getattr(args, "strict_config", False))
    except PoolConfigError as e:
        err.write(f"sriovctl pools: invalid config {args.config}:\n{e}\n")
        return EXIT_BAD_CONFIG
    inventory = SysfsReader(args.sysfs_root).inventory()
    selection = select(config, inventory)
    if args.json:
        json.dump(to_json(selection, inventory), out, indent=2)
        out.write("\n")
    else:
        out.write(render_text(selection, inventory))
    return 0


def _vf_json(vf: VirtualFunction) -> dict[str, object]:
    return {
        "pciAddress": vf.address, "pfName": vf.pf_netdev, "pfAddress": vf.pf_address,
        "vfIndex": vf.index, "vendor": vf.vendor_id, "device": vf.device_id,
        "driver": vf.driver, "netdev": vf.netdev, "numaNode": vf.numa_node,
        "iommuGroup": vf.iommu_group, "rdma": vf.is_rdma, "linkType": str(vf.link_type),
        "id": vf.id, "class": str(vf.device_class),
    }


def _unselected(selection: Selection, inventory: Inventory) -> list[VirtualFunction]:
    """Every device (of any class) that a configured pool could have taken but did not."""
    return [d for d in sorted(inventory.devices, key=lambda d: d.id)
            if d.id in selection.reasons]


def to_json(selection: Selection, inventory: Inventory) -> dict[str, object]:
    """The ``--json`` document: pools in config order, unselected devices with their reasons
    (``vfs`` keeps its name; NICs, accelerators and SFs say so in ``class``)."""
    return {
        "pools": [{"resourceName": name, "vfs": [_vf_json(v) for v in vfs]}
                  for name, vfs in selection.pools.items()],
        "notSelected": [{**_vf_json(v), "reasons": selection.reasons[PciAddress(v.id)].splitlines()}
                        for v in _unselected(selection, inventory)],
        "warnings": list(selection.warnings),
        "skipped": [{"path": s.path, "reason": s.reason} for s in inventory.skipped],
    }


def _vf_line(vf: VirtualFunction) -> str:
    pf = vf.pf_netdev or vf.pf_address
    if vf.aux_name:
        where = f"{vf.aux_name}  {pf} SF {vf.index}"
    elif vf.device_class is DeviceClass.VF:
        where = f"{vf.address}  {pf} VF {vf.index}"
    else:
        where = f"{vf.address}  {vf.device_class}" + (f" {pf} VF {vf.index}" if vf.is_vf else "")
    return (f"  {where}  {vf.vendor_id}:{vf.device_id}  "
            f"{vf.driver or '(unbound)'}  {vf.netdev or '-'}")


def _count(devices: Sequence[VirtualFunction]) -> str:
    n = len(devices)
    if all(d.device_class is DeviceClass.VF for d in devices):
        return "1 VF" if n == 1 else f"{n} VFs"
    return "1 device" if n == 1 else f"{n} devices"


def render_text(selection: Selection, inventory: Inventory) -> str:
    lines: list[str] = []
    for name, vfs in selection.pools.items():
        lines.append(f"{name}: {_count(vfs)}")
        lines.extend(_vf_line(v) for v in vfs)
    unselected = _unselected(selection, inventory)
    lines.append(f"not selected: {_count(unselected)}")
    for vf in unselected:
        lines.append(_vf_line(vf))
        reasons = selection.reasons[PciAddress(vf.id)]
        lines.extend(f"      {reason}" for reason in reasons.splitlines())
    lines.extend(f"warning: {w}" for w in selection.warnings)
    lines.extend(f"skipped: {s.path}: {s.reason}" for s in inventory.skipped)
    return "\n".join(lines) + "\n"
