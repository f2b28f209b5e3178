"""``sriovctl list``: show the SR-IOV PFs and VFs discovery finds (table or JSON).

The sysfs root comes from ``--sysfs-root``, else ``$SRIOV_SYSFS_ROOT``, else ``/``.
Exit status 0 even when some devices were skipped (they are listed with a reason);
1 when there is no readable PCI bus under the root.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

from sriov.inventory_format import format_inventory, inventory_to_json
from sriov.sysfs import DEFAULT_SYSFS_ROOT, SysfsReader

ROOT_ENV = "SRIOV_SYSFS_ROOT"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "list", help="list SR-IOV PFs and VFs found in sysfs",
        description="List SR-IOV network PFs and their VFs (driver, netdev, IOMMU group, "
                    "NUMA node, RDMA) as a table, or as JSON with --json.")
    parser.add_argument("--sysfs-root", type=Path, default=None, metavar="PATH",
                        help=f"directory containing sys/ (default: ${ROOT_ENV} or /)")
    parser.add_argument("--json", action="store_true",
                        help="print a JSON document instead of the table")
    parser.set_defaults(func=run)


def resolve_root(arg: Path | None, environ: Mapping[str, str]) -> Path:
    """``--sysfs-root`` wins, then ``$SRIOV_SYSFS_ROOT``, then ``/``."""
    if arg is not None:
        return arg
    env = environ.get(ROOT_ENV, "")
    return Path(env) if env else DEFAULT_SYSFS_ROOT


def run(args: argparse.Namespace, environ: Mapping[str, str] | None = None,
        out: TextIO | None = None) -> int:
    out = sys.stdout if out is None else out
    root = resolve_root(args.sysfs_root, os.environ if environ is None else environ)
    inventory = SysfsReader(root).inventory()
    if args.json:
        json.dump(inventory_to_json(inventory), out, indent=2)
        out.write("\n")
    else:
        out.write(format_inventory(inventory))
    return 0
