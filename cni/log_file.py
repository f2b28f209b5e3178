"""Opening a netconf's ``logFile`` safely (the plugin runs as root; the netconf is tenant input).

Upstream sriov-cni opens any path a netconf names (and its log library creates missing
directories). Here a ``logFile`` is used only when:

- it is an absolute path whose parent directory already exists: nothing is ever created but
  the file itself;
- that parent, with symlinks resolved, lies inside one of the allowed log directories
  (``SRIOV_CNI_LOG_DIRS``, ``:``-separated; the agent's ``--log-dirs``; default
  :data:`DEFAULT_LOG_DIRS`; empty: no ``logFile`` at all);
- the file is not a symlink (``O_NOFOLLOW``) and is a regular file (never a FIFO or device).

Otherwise the request logs to stderr only and says why in a warning; the verb itself goes on.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TextIO

LOG_DIRS_ENV = "SRIOV_CNI_LOG_DIRS"
DEFAULT_LOG_DIRS: tuple[Path, ...] = (Path("/var/log"), Path("/tmp"))
"""/tmp keeps upstream's documented example (``"logFile": "/tmp/sriov.log"``) working."""


class LogFileRefused(Exception):
    """The netconf's ``logFile`` is not used; the message says why."""


def log_dirs_from(value: str | None) -> tuple[Path, ...]:
    """``SRIOV_CNI_LOG_DIRS`` (or ``--log-dirs``): unset -> default, "" -> none."""
    if value is None:
        return DEFAULT_LOG_DIRS
    return tuple(Path(p) for p in value.split(":") if p.startswith("/"))


def log_dirs_from_env(env: Mapping[str, str]) -> tuple[Path, ...]:
    return log_dirs_from(env.get(LOG_DIRS_ENV))


def inside(path: str, directories: Sequence[str]) -> bool:
    """Whether normalised absolute ``path`` is one of ``directories`` or below one. Pure."""
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in directories)


def open_log_file(log_file: str, allowed: Sequence[Path]) -> TextIO:
    """Open ``log_file`` for appending under the rules above, or raise :class:`LogFileRefused`."""
    if not allowed:
        raise LogFileRefused("logFile is disabled on this node (no allowed log directory)")
    if not log_file.startswith("/") or "\0" in log_file or log_file.endswith("/"):
        raise LogFileRefused("logFile must be an absolute file path")
    parent, name = os.path.split(log_file)
    if name in (".", ".."):
        raise LogFileRefused("logFile must name a file")
    real_parent = os.path.realpath(parent)
    if not os.path.isdir(real_parent):
        raise LogFileRefused(f"directory {parent} does not exist (it is never created)")
    roots = [os.path.realpath(d) for d in allowed]
    if not inside(real_parent, roots):
        raise LogFileRefused(
            f"{parent} is outside the allowed log directories ({':'.join(map(str, allowed))}; "
            f"set {LOG_DIRS_ENV} to change them)")
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(os.path.join(real_parent, name), flags | os.O_NOCTTY, 0o600)
    except OSError as e:
        raise LogFileRefused(f"cannot open it: {e.strerror or e}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise LogFileRefused("it is not a regular file")
    return open(fd, "a", encoding="utf-8", errors="backslashreplace", closefd=True)
