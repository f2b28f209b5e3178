"""Shared fixtures and capability probes.

Skips always carry a reason (pytest runs with ``-ra`` so every skip reason is
printed in the summary); nothing is skipped silently.
"""

from __future__ import annotations

import functools
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def unique(prefix: str = "st-") -> str:
    """A short unique name for test netns/links (``st-`` marks test leftovers)."""
    return prefix + secrets.token_hex(3)


def is_root() -> bool:
    return os.geteuid() == 0


def require_root() -> None:
    if not is_root():
        pytest.skip("needs root for real network namespaces and links")


@functools.cache
def link_kind_supported(kind: str) -> bool:
    """Probe once whether this kernel can create a link of ``kind`` (ipvlan, vlan, dummy...)."""
    if not is_root() or shutil.which("ip") is None:
        return False
    ns = unique("st-probe-")
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        if kind in ("ipvlan", "macvlan", "vlan"):
            subprocess.run(["ip", "-n", ns, "link", "add", "p0", "type", "veth", "peer", "p1"],
                           check=True, capture_output=True)
            extra = ["id", "10"] if kind == "vlan" else []
            cmd = ["ip", "-n", ns, "link", "add", "link", "p0", "x0", "type", kind, *extra]
        else:
            cmd = ["ip", "-n", ns, "link", "add", "x0", "type", kind]
        return subprocess.run(cmd, capture_output=True).returncode == 0
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


def require_link_kind(kind: str) -> None:
    require_root()
    if not link_kind_supported(kind):
        pytest.skip(
            f"this kernel cannot create '{kind}' links (runs in the VM testbed: hack/vm/test.sh)"
        )


@pytest.fixture
def netns() -> Iterator[str]:
    """A fresh named network namespace with lo up; yields its name, deletes it after."""
    require_root()
    name = unique("st-ns-")
    subprocess.run(["ip", "netns", "add", name], check=True)
    subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)
