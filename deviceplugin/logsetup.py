"""Logging of ``sriov-device-plugin``, configured by our flags or by upstream's glog ones.

Upstream (golang/glog v1.2 behind ``sriovdp``; its image's entrypoint) and here:

- ``--log-level``: ours takes a level name (``debug``/``info``/``warning``/``error``); the
  entrypoint's takes glog's verbosity number N (it becomes ``-v N``), as does ``-v N``.
  Upstream has no ``glog.V()`` calls, so its output is the same for every N: everything it
  logs is Info or above. So N <= 10 (the entrypoint's and operator's default is 10) means
  ``info``, and N > 10 opts into our ``debug``.
- ``--log-dir=D`` (entrypoint): a log file under ``<log root>/D`` (``/var/log/D``, created)
  *and* stderr; ``-log_dir`` / ``-log_file`` (glog / klog): a log file; with it, stderr
  gets only records at or above ``-stderrthreshold`` (default ``ERROR``) unless
  ``-alsologtostderr``. ``-logtostderr`` wins over both, as in glog.
- Without any of them we log to stderr only (plain ``sriovdp`` would write to files in
  ``$TMPDIR``; the entrypoint always adds ``--logtostderr`` there, which is what we do).
- ``-vmodule``, ``-log_backtrace_at``, ``-log_link``, ``-logbuflevel`` are checked as glog
  checks them and otherwise have no effect.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import sys
from pathlib import Path
from typing import TextIO

LOG_FILE_NAME = "sriov-device-plugin.log"
DEFAULT_LOG_ROOT = Path("/var/log")
"""The entrypoint's ``--log-dir=D`` means ``/var/log/D``."""
LEVEL_NAMES = ("debug", "info", "warning", "error")
GLOG_INFO_UP_TO = 10
"""Highest glog verbosity that maps to ``info`` (the entrypoint's default, 10)."""
GLOG_SEVERITIES = {"INFO": logging.INFO, "WARNING": logging.WARNING, "ERROR": logging.ERROR,
                   "FATAL": logging.CRITICAL}
FORMAT = "ts=%(asctime)s level=%(levelname)s logger=%(name)s msg=%(message)s"
_INT = re.compile(r"[+-]?[0-9]+")


class LogFlagError(ValueError):
    """A logging flag value glog would refuse too."""


def level(value: str) -> int:
    """``--log-level``: a level name, or glog's verbosity number."""
    if value.lower() in LEVEL_NAMES:
        return int(logging.getLevelName(value.upper()))
    return verbosity(value)


def verbosity(value: str) -> int:
    """glog ``-v N`` -> our level (see the module docstring)."""
    if not _INT.fullmatch(value):
        raise LogFlagError(f"expected {', '.join(LEVEL_NAMES)} or a glog verbosity number, "
                           f"got {value!r}")
    return logging.INFO if int(value) <= GLOG_INFO_UP_TO else logging.DEBUG


def severity(value: str) -> int:
    """glog ``-stderrthreshold``: ``INFO``..``FATAL`` or 0..3."""
    if value.upper() in GLOG_SEVERITIES:
        return GLOG_SEVERITIES[value.upper()]
    if _INT.fullmatch(value) and 0 <= int(value) <= 3:
        return list(GLOG_SEVERITIES.values())[int(value)]
    raise LogFlagError(f"expected INFO, WARNING, ERROR, FATAL or 0..3, got {value!r}")


def vmodule(value: str) -> str:
    """glog ``-vmodule``: ``pattern=N,...`` (checked, then without effect here)."""
    for item in value.split(","):
        pattern, sep, number = item.partition("=")
        if item and (not sep or not pattern or not _INT.fullmatch(number) or "=" in number):
            raise LogFlagError("syntax error: expect comma-separated list of filename=N")
    return value


def backtrace_at(value: str) -> str:
    """glog ``-log_backtrace_at``: ``file.go:N,...`` (checked, then without effect here)."""
    for item in filter(None, value.split(",")):
        file, sep, line = item.partition(":")
        if not sep or "." not in file or ":" in line or not _INT.fullmatch(line) \
                or int(line) < 0:
            raise LogFlagError("syntax error: expect file.go:234")
    return value


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class LogOptions:
    level: int = logging.INFO
    file: Path | None = None
    """Where the log file goes (from ``--log-dir``, ``-log_dir`` or ``-log_file``)."""
    to_stderr_only: bool = False
    """glog ``-logtostderr``: no file at all."""
    also_to_stderr: bool = False
    stderr_threshold: int = logging.ERROR


def options_from(args: object, log_root: Path = DEFAULT_LOG_ROOT) -> LogOptions:
    """The effective settings from parsed CLI args (see :mod:`deviceplugin.cli`)."""
    get = args.__dict__.get
    lvl = next((int(v) for v in (get("log_level"), get("v")) if v is not None), logging.INFO)
    file = None
    also = bool(get("alsologtostderr"))
    if get("log_file"):
        file = Path(str(get("log_file")))
    elif get("log_dir_glog"):
        file = Path(str(get("log_dir_glog"))) / LOG_FILE_NAME
    if get("log_dir"):  # entrypoint: --log_dir /var/log/D --alsologtostderr
        file = log_root / str(get("log_dir")).lstrip("/") / LOG_FILE_NAME
        also = True
    return LogOptions(level=lvl, file=file, to_stderr_only=bool(get("logtostderr")),
                      also_to_stderr=also,
                      stderr_threshold=get("stderrthreshold") or logging.ERROR)


def configure(options: LogOptions, stderr: TextIO | None = None) -> None:
    """Install the handlers (the one side effect here: may create the log directory)."""
    formatter = logging.Formatter(FORMAT)
    console = logging.StreamHandler(sys.stderr if stderr is None else stderr)
    handlers: list[logging.Handler] = [console]
    if options.file is not None and not options.to_stderr_only:
        options.file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(options.file))
        if not options.also_to_stderr:
            console.setLevel(options.stderr_threshold)
    for handler in handlers:
        handler.setFormatter(formatter)
    logging.basicConfig(level=options.level, handlers=handlers, force=True)
