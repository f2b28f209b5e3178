"""The agent's end of the shim socket: claim the path, bind, check peers, read and answer frames.

docs/shim-protocol.md is the spec. Rules enforced here:

- **One agent per socket path.** ``<socket>.lock`` is flock'd (exclusive, non-blocking) before
  the path is touched and held for the agent's lifetime, so of two agents started at once
  exactly one listens; the loser fails with a clear error and never unlinks anything.
- **The socket directory is ours.** A missing one is created 0700; an existing one must be
  owned by the agent's uid and not group/world-writable (else another user could replace the
  socket), or the agent refuses to start.
- **Only root or a configured uid may talk to it** (``SO_PEERCRED``), on top of the 0600 socket.
- **Oversized frames get a permanent error** (code 4 for the environment, 7 for stdin), never
  a dropped connection, which the shim would report as code 11 "try again" forever.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import stat
import sys
from pathlib import Path

from cni.errors import CniCode
from cni.shim import CURRENT_VERSION, FRAME_LIMIT, frame, recv_exact

log = logging.getLogger(__name__)


class AgentSocketError(RuntimeError):
    """The agent cannot (or must not) listen on this path."""


class FrameTooLarge(Exception):
    """A request frame exceeds FRAME_LIMIT; ``reply`` is the permanent error to send back."""

    def __init__(self, which: str, size: int) -> None:
        code, msg = ((CniCode.INVALID_ENV, "environment too large") if which == "env"
                     else (CniCode.INVALID_CONFIG, "network configuration too large"))
        super().__init__(f"{which} frame of {size} bytes exceeds the limit of {FRAME_LIMIT}")
        doc = {"cniVersion": CURRENT_VERSION, "code": int(code), "msg": msg, "details": str(self)}
        self.reply = encode_reply(1, b"", (json.dumps(doc) + "\n").encode())


def check_dir(directory: Path, uid: int) -> None:
    """Create ``directory`` 0700, or require an existing one to be ``uid``'s and not writable
    by group or others."""
    if not directory.exists():
        directory.mkdir(mode=0o700, parents=True)
        os.chmod(directory, 0o700)  # ours: owner only (never chmod a shared dir like /run)
        return
    st = directory.stat()
    if not stat.S_ISDIR(st.st_mode):
        raise AgentSocketError(f"{directory} is not a directory")
    if st.st_uid != uid:
        raise AgentSocketError(
            f"socket directory {directory} is owned by uid {st.st_uid}, not the agent's uid {uid}"
        )
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise AgentSocketError(
            f"socket directory {directory} is group- or world-writable "
            f"(mode {st.st_mode & 0o7777:04o}); use a directory only the agent can write"
        )


def lock_path(socket_path: Path) -> Path:
    return socket_path.with_name(socket_path.name + ".lock")


def claim(socket_path: Path, uid: int | None = None) -> int:
    """Check the directory and take the path's lock; returns the lock fd (keep it open)."""
    check_dir(socket_path.parent, os.geteuid() if uid is None else uid)
    path = lock_path(socket_path)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise AgentSocketError(
            f"another agent (pid {holder}) already serves {socket_path} (it holds {path})"
        ) from None
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def replace_stale(socket_path: Path) -> None:
    """Under the lock: remove a dead agent's socket; refuse if something still answers on it
    (an agent too old to take the lock)."""
    if not (socket_path.exists() or socket_path.is_symlink()):
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(socket_path))
    except (ConnectionRefusedError, FileNotFoundError):
        socket_path.unlink(missing_ok=True)  # stale socket of a dead agent
        return
    finally:
        probe.close()
    raise AgentSocketError(f"another agent already listens on {socket_path}")


def release(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)  # closing drops the flock; the lock file stays (unlinking it would race)


def peer_uid(sock: socket.socket) -> tuple[int, int]:
    """(pid, uid) of the connected peer, from ``SO_PEERCRED``."""
    cred = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
    return (int.from_bytes(cred[0:4], sys.byteorder), int.from_bytes(cred[4:8], sys.byteorder))


def _recv_frame(sock: socket.socket, which: str) -> bytes:
    size = int.from_bytes(recv_exact(sock, 4), "big")
    if size > FRAME_LIMIT:
        raise FrameTooLarge(which, size)
    return recv_exact(sock, size)


def read_request(sock: socket.socket) -> tuple[bytes, bytes]:
    """(env frame, stdin frame). Raises FrameTooLarge, or ConnectionError/OSError when the
    request is cut short."""
    return _recv_frame(sock, "env"), _recv_frame(sock, "stdin")


def encode_reply(status: int, stderr: bytes, stdout: bytes) -> bytes:
    return status.to_bytes(4, "big", signed=True) + frame(stderr) + frame(stdout)
