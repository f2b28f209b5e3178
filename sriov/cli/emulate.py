"""``sriovctl emulate``: an SR-IOV host without SR-IOV hardware (veth-backed, for CI and demos).

Subcommands: ``up``, ``down``, ``status``, ``bind``, ``numvfs``, ``carrier``. Everything
lives under ``--root`` (default ``/run/sriov-emu``): point the device plugin, the CNI
and ``sriovctl list`` at it with their ``--sysfs-root`` option.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TextIO

from sriov.emulate import changes, host
from sriov.emulate.profiles import PROFILES
from sriov.emulate.spec import (
    DEFAULT_PROFILE,
    EmulationSpec,
    EmulationState,
    Profile,
    VfLocation,
    VfRecord,
)
from sriov.emulate.vfadmin import load_state
from sriov.netlink import Netlink

Subparsers = argparse._SubParsersAction


def register(subparsers: Subparsers) -> None:
    p = subparsers.add_parser(
        "emulate", help="build or change an emulated SR-IOV host (veth-backed VFs)",
        description="Emulate SR-IOV NICs: a sysfs tree that mirrors real hardware plus a real "
                    "veth-backed netdev per PF/VF, so the device plugin and CNI run unchanged.")
    sub = p.add_subparsers(dest="emulate_command", metavar="ACTION")
    sub.required = True

    def action(name: str, text: str) -> argparse.ArgumentParser:
        a = sub.add_parser(name, help=text, description=text)
        a.add_argument("--root", type=Path, default=host.DEFAULT_ROOT, metavar="DIR",
                       help=f"where the emulated host lives (default: {host.DEFAULT_ROOT})")
        return a

    up = action("up", "create the emulated host")
    up.add_argument("--pfs", type=int, default=2, help="number of PFs (default: 2)")
    up.add_argument("--vfs", type=int, default=4, help="VFs per PF (default: 4)")
    up.add_argument("--profile", choices=[p.value for p in Profile], default=DEFAULT_PROFILE.value,
                    help=f"NIC to emulate (default: {DEFAULT_PROFILE.value})")
    up.add_argument("--vfio", type=int, default=0, metavar="N",
                    help="bind the last N VFs of each PF to vfio-pci (default: 0)")
    up.add_argument("--numa-nodes", type=int, default=2, metavar="N",
                    help="spread PFs over N NUMA nodes; 0 = no topology (default: 2)")
    up.add_argument("--mtu", type=int, default=1500, help="PF/VF MTU (default: 1500)")
    up.add_argument("--no-netdevs", action="store_true",
                    help="sysfs tree only, no real links (large trees for benchmarks)")
    up.add_argument("--pf-prefix", default="sriovpf", help="PF netdev prefix (default: sriovpf)")
    up.add_argument("--wire-prefix", default="sriovw",
                    help="prefix of the host-side veth ends (default: sriovw)")
    up.add_argument("--bridge", default="sriovemu0", help="bridge name (default: sriovemu0)")
    up.add_argument("--classes", action="store_true",
                    help="also emulate one device of every other class: SFs and a vDPA "
                         "device (bf2), an accelerator (N3000 FEC, class 0x12) and a "
                         "virtio-net VM NIC (docs/emulated-host.md)")
    up.add_argument("--noiommu", action="store_true",
                    help="vfio no-IOMMU mode: vfio-pci VFs get /dev/vfio/noiommu-N")
    up.set_defaults(func=run_up)

    action("down", "remove the emulated host and all its links").set_defaults(func=run_down)
    status = action("status", "show the emulated host's PFs and VFs")
    status.add_argument("--json", action="store_true", help="print sriov-emu.json")
    status.set_defaults(func=run_status)

    bind = action("bind", "bind a VF to a driver (its kernel driver, vfio-pci, or none)")
    bind.add_argument("vf", metavar="VF_ADDR", help="VF PCI address, e.g. 0000:3b:02.0")
    bind.add_argument("driver", metavar="DRIVER", help="e.g. vfio-pci, iavf, none")
    bind.set_defaults(func=run_bind)

    numvfs = action("numvfs", "set a PF's sriov_numvfs (like the kernel: only from/to 0)")
    numvfs.add_argument("pf", metavar="PF", help="PF PCI address or netdev name")
    numvfs.add_argument("count", type=int, metavar="N")
    numvfs.set_defaults(func=run_numvfs)

    carrier = action("carrier", "plug or pull a PF's cable (its auto VFs follow)")
    carrier.add_argument("pf", metavar="PF", help="PF PCI address or netdev name")
    carrier.add_argument("state", choices=["up", "down"])
    carrier.set_defaults(func=run_carrier)


def run_up(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    spec = EmulationSpec(pfs=args.pfs, vfs=args.vfs, profile=Profile(args.profile),
                         vfio=args.vfio, numa_nodes=args.numa_nodes, mtu=args.mtu,
                         netdevs=not args.no_netdevs, pf_prefix=args.pf_prefix,
                         wire_prefix=args.wire_prefix, bridge=args.bridge,
                         classes=args.classes, noiommu=args.noiommu)
    with Netlink() as nl:
        state = host.up(args.root, spec, nl)
    out.write(f"emulated SR-IOV host ({spec.profile.value}, {spec.pfs} PF x {spec.vfs} VF) "
              f"at {args.root}\n")
    _print_table(state, out)
    out.write(f"\nuse it:  sriovctl list --sysfs-root {args.root}\n"
              f"         sriov-device-plugin --sysfs-root {args.root} ...\n"
              f"remove:  sriovctl emulate down --root {args.root}\n")
    return 0


def run_down(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    with Netlink() as nl:
        host.down(args.root, nl)
    out.write(f"emulated host at {args.root} removed\n")
    return 0


def run_status(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    state = load_state(args.root)
    if state.spec.netdevs:
        with Netlink() as nl:
            state = host.refresh(args.root, nl)
    if args.json:
        out.write(json.dumps(state.to_json(), indent=2) + "\n")
    else:
        _print_table(state, out)
    return 0


def run_bind(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    with Netlink() as nl:
        vf = changes.rebind(args.root, args.vf, args.driver, nl)
    out.write(f"{vf.address}: driver {vf.driver or 'none'}, netdev {_where(vf)}\n")
    return 0


def run_numvfs(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    with Netlink() as nl:
        vfs = changes.set_num_vfs(args.root, args.pf, args.count, nl)
    out.write(f"{args.pf}: {len(vfs)} VFs\n")
    return 0


def run_carrier(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    with Netlink() as nl:
        changes.set_pf_carrier(args.root, args.pf, args.state == "up", nl)
    out.write(f"{args.pf}: carrier {args.state}\n")
    return 0


def _where(vf: VfRecord) -> str:
    return {VfLocation.HOST: str(vf.netdev), VfLocation.NETNS: f"{vf.netdev} (in another netns)",
            VfLocation.PARKED: "-", VfLocation.ABSENT: f"{vf.netdev} (tree only)"}[vf.location]


def _print_table(state: EmulationState, out: TextIO) -> None:
    pf_driver = PROFILES[state.spec.profile.value].pf_driver
    out.write(f"{'PCI':<14} {'ROLE':<6} {'DRIVER':<10} {'NUMA':<5} NETDEV\n")
    for pf in state.pfs:
        numa = "-" if pf.numa_node is None else str(pf.numa_node)
        carrier = "" if pf.carrier else " (no carrier)"
        out.write(f"{pf.address:<14} {'PF':<6} {pf_driver:<10} {numa:<5} {pf.netdev}{carrier}\n")
        for vf in state.vfs_of(pf.index):
            out.write(f"{vf.address:<14} {'VF' + str(vf.index):<6} {vf.driver or 'none':<10} "
                      f"{numa:<5} {_where(vf)}\n")
