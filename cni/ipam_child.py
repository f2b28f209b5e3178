"""Running an exec'd IPAM delegate so that it never outlives the request (issue 11 #9).

An agent killed mid-ADD (``kill -9``, OOM) used to leave its IPAM child running; the child then
allocated a lease after the runtime's DEL had already released everything. Here a delegate:

- gets ``PR_SET_PDEATHSIG`` = SIGKILL before ``exec`` (set in the child by ``prctl`` through
  ctypes; the function is resolved in the parent, so the forked child only calls it). Linux
  sends it when the *thread* that forked the child ends: the caller waits for the child in
  that same thread, and the agent's workers are long-lived;
- runs in its own process group, and on timeout or any exception while waiting (the
  standalone plugin's SIGALRM, an interrupted agent) the whole group is SIGKILLed and reaped,
  so a grandchild (a delegate that forks a helper) goes with it.

Grandchildren that leave the group, or an agent killed while a grandchild runs, are not covered:
a lease such a process allocates late is released by GC (``cni.ipam.ExecIpam.gc``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence

from cni.pdeathsig import load_prctl, set_parent_death_signal


def _child_setup(prctl: Callable[..., int], parent: int) -> Callable[[], None]:
    def setup() -> None:  # runs in the forked child before exec: no locks, nothing heavy
        set_parent_death_signal(prctl, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return setup


class ChildTimeout(Exception):
    """The delegate did not finish in time; its process group was killed."""


def run_child(argv: Sequence[str], stdin: bytes, env: Mapping[str, str],
              timeout: float) -> tuple[int, bytes, bytes]:
    """Run ``argv`` to completion; returns (exit status, stdout, stderr)."""
    prctl = load_prctl()
    proc = subprocess.Popen(
        list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=dict(env), process_group=0, preexec_fn=_child_setup(prctl, os.getpid()),
    )
    try:
        out, err = proc.communicate(stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        raise ChildTimeout(f"no answer within {timeout:g}s") from None
    except BaseException:
        kill_group(proc)
        raise
    return proc.returncode, out, err


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the child's process group (its pgid is its pid) and reap the child.

    Only while the child is not reaped yet: until then its pid (the group id) cannot be reused,
    so the signal cannot reach an unrelated group."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(Exception):
        proc.communicate(timeout=5)
