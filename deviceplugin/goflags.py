"""Command lines written for upstream's ``sriovdp`` binary or its image's entrypoint.

A DaemonSet that swaps upstream's image for ours keeps its ``args``, so
``sriov-device-plugin`` accepts what Go's ``flag`` package accepts for ``sriovdp``
(``-flag``, ``--flag``, ``-flag=value``, ``-flag value``; a bool only as ``-flag`` or
``-flag=<bool>``; parsing stops at the first non-flag argument or ``--``), including
golang/glog's logging flags, plus the entrypoint's ``--log-level=N`` and ``--log-dir=D``.

:func:`normalize` rewrites such an argv into plain ``--name=value`` items for argparse;
the meaning of each flag lives in :mod:`deviceplugin.cli` and :mod:`deviceplugin.logsetup`.
Pure: no I/O.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence

GO_TRUE = ("1", "t", "T", "true", "TRUE", "True")
GO_FALSE = ("0", "f", "F", "false", "FALSE", "False")


class FlagError(Exception):
    """A flag Go's flag package would refuse too (exit 2 there)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Normalized:
    argv: tuple[str, ...]
    """``--name=value`` / ``--name`` items for argparse."""
    ignored: tuple[str, ...] = ()
    """Arguments after the first non-flag (Go's flag package stops there; sriovdp ignores
    them)."""


def go_bool(name: str, value: str) -> bool:
    if value in GO_TRUE:
        return True
    if value in GO_FALSE:
        return False
    raise FlagError(f"invalid boolean value {value!r} for -{name}: parse error")


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """Every long option name (without dashes) -> its action."""
    found: dict[str, argparse.Action] = {}
    for action in parser._actions:  # argparse has no public accessor for this
        for option in action.option_strings:
            if option.startswith("--"):
                found[option[2:]] = action
    return found


def normalize(argv: Sequence[str], parser: argparse.ArgumentParser) -> Normalized:
    """Rewrite ``argv`` the way Go's ``flag.Parse`` reads it. Raises :class:`FlagError`."""
    options = _options(parser)
    out: list[str] = []
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            return Normalized(tuple(out), tuple(args[i:]))
        if len(arg) < 2 or not arg.startswith("-"):
            return Normalized(tuple(out), tuple(args[i - 1:]))
        body = arg[2:] if arg.startswith("--") else arg[1:]
        if not body or body[0] in "-=":
            raise FlagError(f"bad flag syntax: {arg}")
        name, has_value, value = body.partition("=")
        if name in ("h", "help"):
            out.append("--help")
            continue
        action = options.get(name)
        if action is None:
            raise FlagError(f"flag provided but not defined: -{name}")
        if action.nargs == 0:  # a bool: only -flag or -flag=<bool>, as Go (last one wins)
            out = [item for item in out if item != f"--{name}"]
            if not has_value or go_bool(name, value):
                out.append(f"--{name}")
            continue
        if not has_value:
            if i >= len(args):
                raise FlagError(f"flag needs an argument: -{name}")
            value = args[i]
            i += 1
        out.append(f"--{name}={value}")
    return Normalized(tuple(out))
