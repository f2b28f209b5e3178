"""Run code inside another network namespace without moving the process.

The calling thread never changes its own netns. :func:`run_in_netns` starts a
short-lived thread, ``setns(2)``s *that thread* into the target namespace
(``CLONE_NEWNET`` is per-thread), runs the callable and lets the thread die.
Anything the callable creates there (a netlink socket, an open
``/proc/sys/net/...`` file) stays bound to the target namespace.

Standard library only.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar

from sriov.errors import DeviceNotFoundError, NetlinkOpError

log = logging.getLogger(__name__)

CLONE_NEWNET = 0x40000000
NETLINK_ROUTE = 0
HOST_NETNS = "/proc/thread-self/ns/net"
"""The namespace of the calling thread (the process's own netns: we never setns it)."""

T = TypeVar("T")

_libc: ctypes.CDLL | None = None


def _setns(fd: int) -> None:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def open_netns(path: str) -> int:
    """Open a netns file (``/var/run/netns/x``, ``/proc/<pid>/ns/net``) read-only; caller closes."""
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError as e:
        raise DeviceNotFoundError("network namespace", path) from e
    except OSError as e:
        raise NetlinkOpError("open netns", path, e.errno or 0) from e


@contextlib.contextmanager
def netns_fd(path: str | None) -> Iterator[int]:
    """An fd for ``IFLA_NET_NS_FD``; ``None`` means the caller's own (host) netns."""
    fd = open_netns(path or HOST_NETNS)
    try:
        yield fd
    finally:
        os.close(fd)


def run_in_netns(path: str | None, fn: Callable[[], T]) -> T:
    """Run ``fn()`` in a thread that joined netns ``path`` and return its result.

    ``None`` runs ``fn`` directly (host netns). Exceptions raised by ``fn`` are
    re-raised in the caller.
    """
    if path is None:
        return fn()
    fd = open_netns(path)
    outcome: dict[str, object] = {}

    def body() -> None:
        try:
            _setns(fd)
        except OSError as e:
            outcome["error"] = NetlinkOpError("setns", path, e.errno or 0)
            return
        try:
            outcome["result"] = fn()
        except BaseException as e:
            outcome["error"] = e

    try:
        worker = threading.Thread(target=body, name=f"netns:{path}", daemon=True)
        worker.start()
        worker.join()
    finally:
        os.close(fd)
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["result"]  # type: ignore[return-value]


def new_netlink_socket() -> socket.socket:
    """A raw ``NETLINK_ROUTE`` socket in the calling thread's netns."""
    return socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_ROUTE)


def netlink_socket_in(path: str | None) -> socket.socket:
    """A raw ``NETLINK_ROUTE`` socket bound to netns ``path`` (``None``: host)."""
    sock = run_in_netns(path, new_netlink_socket)
    log.debug("opened rtnetlink socket fd %s in netns %s", sock.fileno(), path or "host")
    return sock
