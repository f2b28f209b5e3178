"""One stream of device events: PCI hotplug, netdev add/remove, carrier changes.

Sources are injectable. Each :class:`EventSource` exposes a readable file
descriptor and drains its ready events without blocking, so one ``select``
waits on all of them. The real sources are :class:`sriov.udev.UdevEventSource`
(kernel uevents, subsystems ``pci`` and ``net``) and
:class:`sriov.netlink_events.LinkEventSource` (RTMGRP_LINK). Tests and other
producers can use :class:`PipeEventSource`.

Standard library only.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import enum
import logging
import os
import re
import selectors
import threading
import time
from collections.abc import Callable, Iterable
from typing import Protocol

from sriov.types import IfName, PciAddress

log = logging.getLogger(__name__)


class EventKind(enum.StrEnum):
    ADDED = "added"
    REMOVED = "removed"
    CHANGED = "changed"
    CARRIER = "carrier"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class DeviceEvent:
    kind: EventKind
    subsystem: str
    """``pci`` or ``net``."""
    pci: PciAddress | None = None
    """The PCI device, or the PCI parent of a netdev when known."""
    ifname: IfName | None = None
    ifindex: int | None = None
    carrier: bool | None = None
    """Set on ``carrier`` events (and on netlink ``added`` events)."""
    driver: str | None = None
    source: str = ""
    """Which source produced the event (``udev``, ``netlink``, ...)."""


class EventSource(Protocol):
    def fileno(self) -> int: ...

    def read_events(self) -> list[DeviceEvent]:
        """Drain what is ready now; never blocks."""
        ...

    def close(self) -> None: ...


_PCI_IN_PATH = re.compile(r"/([0-9a-f]{4}:[0-9a-f]{2}:[0-1][0-9a-f]\.[0-7])(?=/|$)")


def pci_from_devpath(devpath: str) -> PciAddress | None:
    """The innermost PCI address in a sysfs devpath.

    ``/devices/pci0000:00/0000:00:03.0/net/eth0`` gives ``0000:00:03.0``."""
    found = _PCI_IN_PATH.findall(devpath)
    return PciAddress(found[-1]) if found else None


class PipeEventSource:
    """An in-process source over a real ``os.pipe()`` (like pyudev's FakeMonitor)."""

    def __init__(self) -> None:
        self._read_fd, self._write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._pending: collections.deque[DeviceEvent] = collections.deque()
        self._lock = threading.Lock()

    def push(self, event: DeviceEvent) -> None:
        with self._lock:
            self._pending.append(event)
        os.write(self._write_fd, b"!")

    def fileno(self) -> int:
        return self._read_fd

    def read_events(self) -> list[DeviceEvent]:
        try:
            while os.read(self._read_fd, 4096):
                pass
        except BlockingIOError:
            pass
        with self._lock:
            events = list(self._pending)
            self._pending.clear()
        return events

    def close(self) -> None:
        for fd in (self._read_fd, self._write_fd):
            with contextlib.suppress(OSError):
                os.close(fd)


def default_sources(netns: str | None = None) -> list[EventSource]:
    """The real sources: kernel uevents (pci, net) and rtnetlink link events."""
    from sriov.netlink_events import LinkEventSource
    from sriov.udev import UdevEventSource

    return [UdevEventSource(), LinkEventSource(netns=netns)]


class EventStream:
    """Merge several sources; :meth:`poll` them or :meth:`start` a delivery thread."""

    def __init__(self, sources: Iterable[EventSource] | None = None) -> None:
        self._sources = list(sources) if sources is not None else default_sources()
        self._selector = selectors.DefaultSelector()
        for source in self._sources:
            self._selector.register(source.fileno(), selectors.EVENT_READ, source)
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    def fileno(self) -> int:
        """A descriptor that is readable when any source is (epoll fd)."""
        return self._selector.fileno()

    def poll(self, timeout: float | None = None) -> list[DeviceEvent]:
        """Events ready within ``timeout`` seconds (``None`` waits, ``0`` never blocks)."""
        events: list[DeviceEvent] = []
        for key, _ in self._selector.select(timeout):
            source = key.data
            if source is None:
                self._drain_wakeup()
                continue
            try:
                events.extend(source.read_events())
            except OSError:
                log.exception("event source %s failed; dropping it", type(source).__name__)
                self._selector.unregister(key.fd)
        return events

    def wait_for(
        self, predicate: Callable[[DeviceEvent], bool], timeout: float
    ) -> list[DeviceEvent]:
        """Poll until an event matching ``predicate`` arrives or ``timeout`` passes.

        Returns every event seen."""
        deadline = time.monotonic() + timeout
        seen: list[DeviceEvent] = []
        while (left := deadline - time.monotonic()) > 0:
            batch = self.poll(left)
            seen.extend(batch)
            if any(predicate(e) for e in batch):
                break
        return seen

    def start(self, callback: Callable[[DeviceEvent], None]) -> None:
        """Deliver events to ``callback`` from a background thread until :meth:`close`."""
        if self._thread is not None:
            raise RuntimeError("event stream already started")

        def loop() -> None:
            while not self._stopping.is_set():
                for event in self.poll(None):
                    try:
                        callback(event)
                    except Exception:
                        log.exception("event callback failed for %s", event)

        self._thread = threading.Thread(target=loop, name="sriov-events", daemon=True)
        self._thread.start()

    def _drain_wakeup(self) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass

    def close(self) -> None:
        self._stopping.set()
        os.write(self._wake_w, b"x")
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self._selector.close()
        for source in self._sources:
            source.close()
        os.close(self._wake_r)
        os.close(self._wake_w)

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
