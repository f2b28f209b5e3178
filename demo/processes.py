"""Daemons the demo starts (device plugin, CNI agent): argv lists, logs to files, clean stop."""

from __future__ import annotations

import logging
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

log = logging.getLogger(__name__)
STOP_GRACE = 5.0


class ProcessError(Exception):
    """A daemon exited early or never became ready; the text includes its log tail."""


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` seconds pass (a deadline, not a sleep)."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


class Daemon:
    def __init__(self, name: str, argv: Sequence[str], log_path: Path) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self) -> None:
        with self.log_path.open("ab") as logfile:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=logfile,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        log.info("started %s pid=%s", self.name, self.proc.pid)

    def wait_ready(self, ready: Callable[[], bool], timeout: float) -> None:
        def done() -> bool:
            return ready() or (self.proc is not None and self.proc.poll() is not None)

        wait_until(done, timeout)
        if self.proc is None or self.proc.poll() is not None:
            raise ProcessError(f"{self.name} exited early: {self.log_tail()}")
        if not ready():
            raise ProcessError(f"{self.name} not ready after {timeout:.0f}s: {self.log_tail()}")

    def log_tail(self, lines: int = 5) -> str:
        try:
            text = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        return " | ".join(text[-lines:]) or "(empty log)"

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after a grace period; returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_GRACE)
            except subprocess.TimeoutExpired:
                log.warning("%s ignored SIGTERM; killing it", self.name)
                self.proc.kill()
                self.proc.wait(STOP_GRACE)
        return self.proc.returncode
