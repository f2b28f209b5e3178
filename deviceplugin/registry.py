"""DeviceRegistry: the one place that rescans the host and tells streams about changes.

Rescans are event driven (``trigger()`` from inotify/udev/netlink/SIGHUP; full
rescans debounced, health-only passes immediate) plus a slow safety timer. Each
scan result that differs from the previous one bumps ``generation`` and wakes
every waiter on one Condition; no sleep loops.
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
    index: Mapping[str, PoolDevice] = dataclasses.field(default_factory=dict, compare=False)
    """Device ID -> device; built once per scan (Allocate looks IDs up here)."""

    def __post_init__(self) -> None:
        if not self.index:
            object.__setattr__(self, "index", {d.id: d for d in self.devices})

    def by_id(self) -> Mapping[str, PoolDevice]:
        return self.index


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
        health_scan: Scan | None = None,
        safety_scan: Scan | None = None,
        debounce_s: float = DEFAULT_DEBOUNCE_S,
        safety_interval_s: float = DEFAULT_SAFETY_INTERVAL_S,
    ) -> None:
        self._scan = scan
        self._health_scan = health_scan or scan
        self._safety_scan = safety_scan or scan
        self._full_pending = True
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
        self._full_pending = False
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
    def trigger(self, *, health_only: bool = False) -> None:
        """Ask for a rescan soon (debounced). Safe from any thread or signal handler.

        ``health_only`` (a carrier flip) recomputes health on the last selection
        without re-reading the inventory; any full trigger in the same batch wins.
        """
        self.last_trigger_at = time.monotonic()
        if not health_only:
            self._full_pending = True
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
    def rescan(self, *, health_only: bool = False, safety: bool = False) -> bool:
        """Scan now; returns whether anything changed."""
        scan = self._health_scan if health_only else self._safety_scan if safety else self._scan
        try:
            pools = dict(scan())
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
            if not self._kick.is_set():
                self.rescan(safety=True)  # safety timer: full unless provably unchanged
                continue
            if self._full_pending and self._debounce_s > 0:
                # let a burst of structural events (numvfs, rebinds) settle; health-only
                # passes run at once (events during the pass coalesce into the next one)
                self._stopped.wait(self._debounce_s)
            self._kick.clear()
            full, self._full_pending = self._full_pending, False
            self.rescan(health_only=not full)
