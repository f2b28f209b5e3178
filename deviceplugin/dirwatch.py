"""Minimal inotify (via ctypes on libc) and a watcher thread; no polling loops.

Used for: kubelet restarts (our socket deleted, ``kubelet.sock`` re-created),
config edits (including ConfigMap ``..data`` symlink swaps) and emulated sysfs
trees (``carrier`` / ``sriov_numvfs`` files). Real sysfs does not emit inotify
events; there udev/netlink events drive rescans instead.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import dataclasses
import enum
import errno
import logging
import os
import select
import struct
import threading
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

_EVENT_HEADER = struct.Struct("iIII")  # wd, mask, cookie, len


class Mask(enum.IntFlag):
    MODIFY = 0x00000002
    ATTRIB = 0x00000004
    CLOSE_WRITE = 0x00000008
    MOVED_FROM = 0x00000040
    MOVED_TO = 0x00000080
    CREATE = 0x00000100
    DELETE = 0x00000200
    DELETE_SELF = 0x00000400
    MOVE_SELF = 0x00000800
    IGNORED = 0x00008000
    DONT_FOLLOW = 0x02000000
    ONLYDIR = 0x01000000

    @classmethod
    def dir_changes(cls) -> Mask:
        return cls.CREATE | cls.DELETE | cls.MOVED_FROM | cls.MOVED_TO | cls.CLOSE_WRITE

    @classmethod
    def file_changes(cls) -> Mask:
        return cls.MODIFY | cls.CLOSE_WRITE | cls.ATTRIB | cls.DELETE_SELF | cls.MOVE_SELF


_IN_NONBLOCK = os.O_NONBLOCK
_IN_CLOEXEC = os.O_CLOEXEC


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class InotifyEvent:
    wd: int
    mask: Mask
    name: str
    """Entry name inside a watched directory; empty for the watched path itself."""


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


class Inotify:
    """One inotify instance (a file descriptor)."""

    def __init__(self) -> None:
        self._libc = _libc()
        fd = self._libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, "inotify_init1: " + os.strerror(err))
        self._fd = fd

    def fileno(self) -> int:
        return self._fd

    def add(self, path: Path, mask: Mask) -> int:
        wd = self._libc.inotify_add_watch(self._fd, os.fsencode(path), int(mask))
        if wd < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"inotify_add_watch {path}: {os.strerror(err)}")
        return int(wd)

    def remove(self, wd: int) -> None:
        self._libc.inotify_rm_watch(self._fd, wd)  # EINVAL when already gone: fine

    def read(self) -> list[InotifyEvent]:
        try:
            data = os.read(self._fd, 64 * 1024)
        except BlockingIOError:
            return []
        events = []
        offset = 0
        while offset + _EVENT_HEADER.size <= len(data):
            wd, mask, _cookie, length = _EVENT_HEADER.unpack_from(data, offset)
            offset += _EVENT_HEADER.size
            raw = data[offset:offset + length].split(b"\0", 1)[0]
            offset += length
            events.append(InotifyEvent(wd=wd, mask=Mask(mask), name=os.fsdecode(raw)))
        return events

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class Watcher:
    """A thread that blocks on one inotify fd and hands event batches to a callback."""

    def __init__(self, on_events: Callable[[list[InotifyEvent]], None], name: str) -> None:
        self._inotify = Inotify()
        self._on_events = on_events
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._stopping = False

    def watch(self, path: Path, mask: Mask) -> int | None:
        """Add a watch; returns None (and logs) when the path does not exist."""
        try:
            return self._inotify.add(path, mask)
        except OSError as e:
            if e.errno in (errno.ENOENT, errno.ENOTDIR):
                log.debug("not watching missing path=%s", path)
                return None
            raise

    def unwatch(self, wd: int) -> None:
        self._inotify.remove(wd)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping = True
        os.write(self._wake_w, b"x")
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)
        self._inotify.close()
        os.close(self._wake_r)
        os.close(self._wake_w)

    def _run(self) -> None:
        fd = self._inotify.fileno()
        while not self._stopping:
            ready, _, _ = select.select([fd, self._wake_r], [], [])
            if self._stopping:
                return
            if fd in ready:
                events = self._inotify.read()
                if events:
                    try:
                        self._on_events(events)
                    except Exception:
                        log.exception("inotify handler failed")
