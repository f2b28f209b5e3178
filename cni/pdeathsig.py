"""The parent-death signal (Linux ``prctl(PR_SET_PDEATHSIG)``), shared by the agent's worker
processes and the IPAM delegates it execs: neither may outlive the process that started it.

``prctl`` is resolved once, in the parent, so a forked child only calls it (no imports or
locks between fork and exec). ``ctypes`` is imported on first use only.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

PR_SET_PDEATHSIG = 1
_prctl: list[Callable[..., int]] = []
_prctl_lock = threading.Lock()


def load_prctl() -> Callable[..., int]:
    """libc ``prctl``; where there is none (not Linux/glibc), a stand-in that returns -1."""
    with _prctl_lock:
        if not _prctl:
            import ctypes

            try:
                _prctl.append(ctypes.CDLL(None, use_errno=True).prctl)
            except (OSError, AttributeError):
                _prctl.append(lambda *a: -1)
        return _prctl[0]


def set_parent_death_signal(prctl: Callable[..., int], signum: int) -> bool:
    """Ask the kernel to send ``signum`` to this process when its parent dies."""
    return bool(prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0) == 0)
