"""Waiting for the CNI agent's deferred DEL tails (docs/cni.md "Deferred DEL")."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


def settle(state_dir: Path) -> None:
    """Wait for the agent's deferred DEL tails (a VF's move home and restore, a fallback link's
    deletion, after the reply): each holds its attachment's lock (and its VF's) until done, so
    taking and dropping every such lock waits for all of them - what a next verb on the
    attachment or an ADD of the VF does too (docs/cni.md "Deferred DEL")."""
    for pattern in ("attach_lock/*.lock", "pci/vf_lock/*.lock"):
        for lock in sorted(state_dir.glob(pattern)):
            try:
                fd = os.open(lock, os.O_RDONLY)
            except FileNotFoundError:
                continue  # its holder finished and unlinked it meanwhile
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            finally:
                os.close(fd)
