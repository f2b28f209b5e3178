"""Pre-forked worker processes behind the agent's one listening socket.

One Python process serves requests one GIL at a time: a burst of pod attaches then queues on
Python work (request parsing, netlink message encoding, state files) while the kernel could do
more. ``sriov-cni-agent --workers N`` binds the socket once and forks N workers before any
netlink socket or thread exists; each worker builds its own warm runtime and accepts on the
shared socket (the kernel hands each connection to one of them). Everything the workers share
is on disk under ``flock`` (attachment records, per-VF locks, IPAM leases, VLAN parents), as it
already is between the agent and standalone invocations, so no request sees another worker's
half-done work. The parent only supervises: a worker that dies is replaced, SIGTERM/SIGINT
stop them all. The wire protocol is unchanged.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import time
from collections.abc import Callable

from cni.pdeathsig import load_prctl, set_parent_death_signal

log = logging.getLogger(__name__)
RESPAWN_BACKOFF = 0.5
"""Seconds between replacing workers that keep dying (a broken host must not spin the CPU)."""
QUICK_DEATH = 5.0
"""A worker that exits this soon after its start failed to start (e.g. its runtime)..."""
GIVE_UP_AFTER = 5
"""...and after this many such failures in a row the agent exits 1 instead of respawning."""


def default_workers() -> int:
    """Two workers per CPU, at least 2 and at most 8 (each holds a warm runtime, ~26 MB RSS).

    Two per CPU: a worker waiting on the kernel (RTNL, fsync, a netns move) leaves its CPU to
    another, and a burst of 64 requests is spread over more GILs (hack/bench-cni row 7: 2 workers
    1.3-1.5x Go's batch on 2 CPUs, 4 workers 1.0x)."""
    return max(2, min(2 * (os.cpu_count() or 1), 8))


def _die_with(parent: int) -> None:
    """SIGTERM this worker when the parent dies (even by SIGKILL): no orphan keeps serving."""
    if not set_parent_death_signal(load_prctl(), signal.SIGTERM):
        log.warning("PR_SET_PDEATHSIG failed: %s", os.strerror(ctypes.get_errno()))
    if os.getppid() != parent:  # the parent died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


class WorkerPool:
    """Forks ``count`` processes running ``serve()``; supervises them until stopped."""

    def __init__(self, count: int, serve: Callable[[], int]) -> None:
        if count < 1:
            raise ValueError("at least one worker")
        self.count = count
        self._serve = serve
        self._pids: dict[int, float] = {}
        """pid -> its start time (monotonic)."""
        self._stopping = False

    def _spawn(self) -> None:
        parent = os.getpid()
        # Signals stay blocked across the fork: a SIGTERM for a worker that arrived before it
        # dropped the parent's handler would run that handler in the worker and be lost there.
        stop_signals = {signal.SIGTERM, signal.SIGINT}
        signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
        try:
            pid = os.fork()
            if pid == 0:  # worker: default signal handling, serve, never return into our code
                status = 1
                try:
                    signal.signal(signal.SIGTERM, signal.SIG_DFL)
                    signal.signal(signal.SIGINT, signal.SIG_DFL)
                    signal.pthread_sigmask(signal.SIG_UNBLOCK, stop_signals)
                    _die_with(parent)
                    status = self._serve()
                except BaseException:
                    log.exception("CNI agent worker %s failed", os.getpid())
                finally:
                    logging.shutdown()
                    os._exit(status)
            self._pids[pid] = time.monotonic()
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, stop_signals)  # a pending stop runs now
        log.info("CNI agent worker %s started", pid)
        if self._stopping:  # a stop signal came while it was being forked
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    def stop(self, signum: int = signal.SIGTERM, frame: object = None) -> None:
        """Signal handler of the parent: stop every worker (they finish their requests)."""
        self._stopping = True
        for pid in self._pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    def run(self) -> int:
        """Start the workers and supervise them until :meth:`stop`; returns the exit status."""
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
        for _ in range(self.count):
            if self._stopping:
                break
            self._spawn()
        status = 0
        last_respawn = 0.0
        quick_deaths = 0
        while self._pids:
            try:
                pid, raw = os.wait()
            except ChildProcessError:
                break
            except InterruptedError:  # pragma: no cover - PEP 475 retries; kept for clarity
                continue
            if pid not in self._pids:
                continue
            started = self._pids.pop(pid)
            code = os.waitstatus_to_exitcode(raw)
            if self._stopping:
                continue
            status = 1
            quick_deaths = quick_deaths + 1 if time.monotonic() - started < QUICK_DEATH else 0
            if quick_deaths >= GIVE_UP_AFTER:
                log.error("CNI agent workers keep failing at start (last: %s exited %s); "
                          "stopping", pid, code)
                self.stop()
                continue
            log.error("CNI agent worker %s exited (%s); starting a new one", pid, code)
            wait = last_respawn + RESPAWN_BACKOFF - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            last_respawn = time.monotonic()
            if not self._stopping:
                self._spawn()
        return 1 if quick_deaths >= GIVE_UP_AFTER else 0 if self._stopping else status
