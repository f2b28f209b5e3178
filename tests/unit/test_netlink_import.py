"""sriov.netlink loads pyroute2 without its all-features package __init__, losing nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=REPO)
    return out.stdout.strip()


def test_netlink_skips_unused_pyroute2_features() -> None:
    assert _run("import sys, sriov.netlink; print('pyroute2.ndb' in sys.modules)") == "False"


def test_full_pyroute2_still_importable_afterwards() -> None:
    code = ("import sriov.netlink, pyroute2; from pyroute2 import NDB, IPRoute; "
            "print(IPRoute is sriov.netlink.IPRoute, pyroute2.__version__ != 'unknown', "
            "pyroute2.config.__name__)")
    assert _run(code) == "True True pyroute2.config"
