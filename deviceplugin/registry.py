"""DeviceRegistry: the one place that rescans the host and tells streams about changes.

Rescans are event driven (``trigger()`` from inotify/udev/netlink/SIGHUP,
debounced) plus a slow safety timer. Each scan result that differs from the
previous one bumps ``generation`` and wakes every waiter on one Condition; no
sleep loops.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Mapping

from deviceplugin.pool import PoolDevice, PoolSpec

log = logging.getLogger(__name__)

DEFAULT_DEBOUNCE_S = 0.02
DEFAULT_SAFETY_INTERVAL_S = 30.0


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class PoolState:
    spec: PoolSpec
    devices: tuple[PoolDevice, ...]

    def device(self, device_id: str) -> PoolDevice | None:
        return next((d for d in self.devices if d.id == device_id), None)

    def by_id(self) -> dict[str, PoolDevice]:
        return {d.id: d for d in self.devices}


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Snapshot:
    generation: int
    pools: Mapping[str, PoolState]


Scan = Callable[[], Mapping[str, PoolState]]
Listener = Callable[[Snapshot], None]


class DeviceRegistry:
    def __init__(
        self,
        scan: Scan,
        *,
        debounce_s: float = DEFAULT_DEBOUNCE_S,
        safety_interval_s: float = DEFAULT_SAFETY_INTERVAL_S,
    ) -> None:
        self._scan = scan
        self._debounce_s = debounce_s
        self._safety_interval_s = safety_interval_s
        self._changed = threading.Condition()
        self._kick = threading.Event()
        self._stopped = threading.Event()
        self._snapshot = Snapshot(generation=0, pools={})
        self._listeners: list[Listener] = []
        self._thread = threading.Thread(target=self._run, name="dp-registry", daemon=True)
        self.last_trigger_at = 0.0

    # -- lifecycle -----------------------------------------------------------------
    def start(self) -> Snapshot:
        """Scan once synchronously, then keep rescanning on triggers in a thread."""
        self.rescan()
        self._thread.start()
        return self.snapshot

    def stop(self) -> None:
        self._stopped.set()
        self._kick.set()
        self.wake_all()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    def add_listener(self, listener: Listener) -> None:
        """Called (from the registry thread) after every change, in order of registration."""
        self._listeners.append(listener)

    # -- change notification ----------------------------------------------------------
    def trigger(self) -> None:
        """Ask for a rescan soon (debounced). Safe from any thread or signal handler."""
        self.last_trigger_at = time.monotonic()
        self._kick.set()

    @property
    def snapshot(self) -> Snapshot:
        with self._changed:
            return self._snapshot

    def wait_for_change(self, generation: int, timeout: float | None) -> Snapshot:
        """Block until the generation differs from ``generation``, timeout, stop or wake."""
        with self._changed:
            if self._snapshot.generation == generation and not self._stopped.is_set():
                self._changed.wait(timeout)
            return self._snapshot

    def wake_all(self) -> None:
        """Wake waiters so they can re-check their own stop conditions."""
        with self._changed:
            self._changed.notify_all()

    # -- scanning ------------------------------------------------------------------
    def rescan(self) -> bool:
        """Scan now; returns whether anything changed."""
        try:
            pools = dict(self._scan())
        except Exception:
            log.exception("rescan failed; keeping the previous device lists")
            return False
        with self._changed:
            if pools == dict(self._snapshot.pools):
                return False
            self._snapshot = Snapshot(generation=self._snapshot.generation + 1, pools=pools)
            snapshot = self._snapshot
            self._changed.notify_all()
        log.info("devices changed generation=%s pools=%s", snapshot.generation,
                 ",".join(f"{n}:{len(p.devices)}" for n, p in sorted(pools.items())))
        for listener in self._listeners:
            try:
                listener(snapshot)
            except Exception:
                log.exception("registry listener failed")
        return True

    def _run(self) -> None:
        while not self._stopped.is_set():
            self._kick.wait(self._safety_interval_s)
            if self._stopped.is_set():
                return
            if self._kick.is_set() and self._debounce_s > 0:
                self._stopped.wait(self._debounce_s)  # let a burst of events settle
            self._kick.clear()
            self.rescan()
