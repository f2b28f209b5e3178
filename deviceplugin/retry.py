"""Retry of failed registrations with exponential backoff, on one thread, without polling.

``failed(key)`` schedules ``action(key)`` after the key's next backoff delay
(1 s, 2 s, 4 s ... capped at 30 s by default); ``succeeded(key)`` resets it. With
nothing scheduled the thread blocks on a Condition with no timeout (idle = 0 % CPU).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Backoff:
    initial_s: float = 1.0
    maximum_s: float = 30.0

    def delay(self, failures: int) -> float:
        """Delay after the ``failures``-th consecutive failure (1-based)."""
        return min(self.maximum_s, self.initial_s * 2 ** max(0, failures - 1))


DEFAULT_BACKOFF = Backoff()


class RetryTimer:
    def __init__(self, action: Callable[[str], None], backoff: Backoff,
                 clock: Callable[[], float] = time.monotonic, name: str = "dp-retry") -> None:
        self._action = action
        self._backoff = backoff
        self._clock = clock
        self._cond = threading.Condition()
        self._due: dict[str, float] = {}
        self._failures: dict[str, int] = {}
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)

    def failed(self, key: str) -> float:
        """Schedule a retry of ``key``; returns the delay chosen."""
        with self._cond:
            failures = self._failures.get(key, 0) + 1
            self._failures[key] = failures
            delay = self._backoff.delay(failures)
            self._due[key] = self._clock() + delay
            self._cond.notify_all()
        log.info("retry scheduled key=%s attempt=%s in_s=%.1f", key, failures, delay)
        return delay

    def succeeded(self, key: str) -> None:
        self.cancel(key)

    def cancel(self, key: str) -> None:
        with self._cond:
            self._due.pop(key, None)
            self._failures.pop(key, None)

    def pending(self) -> dict[str, float]:
        """Key -> seconds until its retry (for tests and logs)."""
        with self._cond:
            now = self._clock()
            return {k: max(0.0, t - now) for k, t in self._due.items()}

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopped:
                    now = self._clock()
                    ready = [k for k, t in self._due.items() if t <= now]
                    if ready:
                        break
                    timeout = min(self._due.values()) - now if self._due else None
                    self._cond.wait(timeout)
                if self._stopped:
                    return
                for key in ready:
                    del self._due[key]
            for key in ready:
                try:
                    self._action(key)
                except Exception:
                    log.exception("retry action failed key=%s", key)
