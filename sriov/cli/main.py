"""``sriovctl``: the operator's command line.

Each subcommand lives in its own module exposing ``register(subparsers)``, which adds
an argparse sub-parser whose ``func(args) -> int`` runs it. Add a module name to
``SUBCOMMANDS`` to wire a new one in.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from sriov.errors import SriovError

SUBCOMMANDS: tuple[str, ...] = ("nad", "labels", "list", "pools", "emulate", "demo")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sriovctl",
        description="Inspect and manage SR-IOV NICs for Kubernetes (sriov-k8s).",
    )
    parser.add_argument("--log-level", default="warning",
                        choices=["debug", "info", "warning", "error"],
                        help="log verbosity on stderr (default: warning)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in SUBCOMMANDS:
        importlib.import_module(f"sriov.cli.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args))
    except SriovError as e:
        print(f"sriovctl: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
