"""``sriovctl demo``: the end-to-end demo on an emulated SR-IOV host (see docs/demo.md).

The orchestration lives in the top-level ``demo`` package (it composes the device plugin and
the CNI, which ``sriov`` must not import); it is imported lazily, only when the command runs.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import Any

DEFAULT_WORKDIR = Path("/run/sriov-demo")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "demo", help="run the end-to-end demo on an emulated SR-IOV host",
        description="Emulated host (2 PF x 4 VF), device plugin, simulated kubelet, two pods "
                    "started by podman with the sriov CNI, ping, netns-loss recovery, and a "
                    "check that nothing leaked. Cleans up after itself (also on Ctrl-C).")
    p.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR, metavar="DIR",
                   help=f"where everything lives while the demo runs (default: {DEFAULT_WORKDIR})")
    p.add_argument("--runtime", choices=["auto", "podman", "netns"], default="auto",
                   help="auto: podman if it can run a container here, else ip netns (default)")
    p.add_argument("--keep", action="store_true",
                   help="leave everything up for poking; tear down later with --down")
    p.add_argument("--down", action="store_true",
                   help="tear down a demo left up by --keep (same --workdir)")
    p.add_argument("--pf-prefix", default="demopf", help="PF netdev prefix (default: demopf)")
    p.add_argument("--wire-prefix", default="demow", help="wire-end prefix (default: demow)")
    p.add_argument("--bridge", default="demobr0", help="emulated host bridge (default: demobr0)")
    p.add_argument("--pod-prefix", default="demo-pod-", help="pod name prefix (default: demo-pod-)")
    p.add_argument("--config-dir", type=Path, default=None, metavar="DIR",
                   help="pools.json + sriov-net.conflist (default: configs/demo of this checkout)")
    p.set_defaults(func=run)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    from demo import runner, teardown  # lazy: the top layer, see the module docstring
    from demo.stack import DEFAULT_CONFIG_DIR

    previous = signal.signal(signal.SIGTERM, _interrupt)  # SIGTERM cleans up like Ctrl-C
    try:
        if args.down:
            return teardown.down(args.workdir, sys.stdout)
        options = runner.DemoOptions(
            workdir=args.workdir, config_dir=args.config_dir or DEFAULT_CONFIG_DIR,
            pf_prefix=args.pf_prefix, wire_prefix=args.wire_prefix, bridge=args.bridge,
            pod_prefix=args.pod_prefix, runtime=args.runtime, keep=args.keep)
        return runner.run(options, sys.stdout)
    finally:
        signal.signal(signal.SIGTERM, previous)
