"""Per-invocation logging for the CNI plugin.

Records go to the invocation's stderr (the runtime shows it in its logs) and, when the netconf
sets ``logFile``, to that file (:mod:`cni.log_file` decides whether it may be opened). Level
comes from ``logLevel`` (sriov-cni names: panic, error, warning, info, debug; default info).
Every record carries ``container_id``, ``netns`` and ``ifname``.

A request's level is its own (issue 11 #4): the agent serves requests concurrently in worker
threads, and one tenant's ``"logLevel": "debug"`` must neither put other requests' records in
anyone's output nor change the process's own level (the agent's ``--log-level``). So:

- each request's handlers sit on the ``cni`` and ``sriov`` loggers and accept only records
  emitted in that request's context (a :class:`contextvars.ContextVar`), at its level;
- those loggers do not propagate; a :class:`_ProcessForwarder` hands a record on to the
  process's handlers (root's) only at the level the process configured for that logger;
- while some request wants more detail than the process, the two loggers are lowered to the
  lowest level any live request asked for, and restored when the last such request ends.
"""

from __future__ import annotations

import contextlib
import contextvars
import itertools
import logging
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TextIO

from cni.log_file import DEFAULT_LOG_DIRS, LogFileRefused, open_log_file

LEVELS = {
    "panic": logging.CRITICAL,
    "error": logging.ERROR,
    "warning": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
}
FORMAT = (
    "%(asctime)s %(levelname)s [cid=%(container_id)s netns=%(netns)s if=%(ifname)s] "
    "%(name)s: %(message)s"
)
LOGGER_NAMES = ("cni", "sriov")

_request: contextvars.ContextVar[tuple[int, str, str, str] | None] = contextvars.ContextVar(
    "cni_request", default=None
)
_ids = itertools.count(1)


class _RequestFilter(logging.Filter):
    """Adds the request labels to a record and drops records of other requests."""

    def __init__(self, request_id: int) -> None:
        super().__init__()
        self.request_id = request_id

    def filter(self, record: logging.LogRecord) -> bool:
        current = _request.get()
        if current is None or current[0] != self.request_id:
            return False
        _, record.container_id, record.netns, record.ifname = current
        return True


class _Levels:
    """The two loggers' levels: the process's own, lowered while a request needs more."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.wanted: Counter[int] = Counter()  # level -> number of live requests asking for it
        self.process: dict[str, int] = {}  # logger name -> level the process set (NOTSET: none)
        self.applied: dict[str, int] = {}  # logger name -> level we set last

    def install(self) -> None:
        """Once per process: stop propagation, forward at the process's level instead."""
        for name in LOGGER_NAMES:
            logger = logging.getLogger(name)
            if name in self.process:
                continue
            self.process[name] = self.applied[name] = logger.level
            logger.propagate = False
            logger.addHandler(_ProcessForwarder(self))

    def process_level(self, name: str) -> int:
        """The level the process configured for logger ``name`` (ours excluded), as inherited."""
        logger: logging.Logger | None = logging.getLogger(name)
        while logger is not None:
            own = self.process.get(logger.name, logger.level)
            if own != logging.NOTSET:
                return own
            logger = logger.parent
        return logging.WARNING

    def _apply(self) -> None:
        for name in LOGGER_NAMES:
            logger = logging.getLogger(name)
            if logger.level != self.applied[name]:
                self.process[name] = logger.level  # someone configured it since: that is theirs
            level = self.process[name]
            if self.wanted and min(self.wanted) < self.process_level(name):
                level = min(self.wanted)  # lowered for a request that wants more detail
            self.applied[name] = level
            if logger.level != level:  # setLevel clears the cache of every logger
                logger.setLevel(level)

    def want(self, level: int) -> None:
        with self.lock:
            self.install()
            self.wanted[level] += 1
            self._apply()

    def done(self, level: int) -> None:
        with self.lock:
            self.wanted[level] -= 1
            if self.wanted[level] <= 0:
                del self.wanted[level]
            self._apply()


_levels = _Levels()


class _ProcessForwarder(logging.Handler):
    """On ``cni``/``sriov`` (which do not propagate): the process's handlers get a record only
    at the level the process itself configured, never at a request's lowered level."""

    def __init__(self, levels: _Levels) -> None:
        super().__init__(logging.NOTSET)
        self.levels = levels

    def handle(self, record: logging.LogRecord) -> bool:
        if record.levelno < self.levels.process_level(record.name):
            return False
        top = logging.getLogger(record.name.split(".")[0])
        logger: logging.Logger | None = top.parent
        while logger is not None:  # what propagation would have done (no lastResort)
            for handler in logger.handlers:
                # a handler also attached to ``top`` itself (pytest's capture does that with
                # every non-propagating logger) has had the record already
                if record.levelno >= handler.level and handler not in top.handlers:
                    handler.handle(record)
            logger = logger.parent if logger.propagate else None
        return True

    def emit(self, record: logging.LogRecord) -> None:  # pragma: no cover - handle() overrides
        pass


class RequestLogging:
    """Handlers of one invocation; ``configure()`` may be called again once the netconf is known."""

    def __init__(self, stderr: TextIO, container_id: str, netns: str, ifname: str) -> None:
        self.request_id = next(_ids)
        self.filter = _RequestFilter(self.request_id)
        self.labels = (self.request_id, container_id or "-", netns or "-", ifname or "-")
        self.level = logging.INFO
        _levels.want(self.level)
        self.stderr_handler = logging.StreamHandler(stderr)
        self.file_handler: logging.Handler | None = None
        self._attach(self.stderr_handler)

    def _attach(self, handler: logging.Handler) -> None:
        handler.setLevel(self.level)
        handler.setFormatter(logging.Formatter(FORMAT))
        handler.addFilter(self.filter)
        for name in LOGGER_NAMES:
            logging.getLogger(name).addHandler(handler)

    def configure(self, level_name: str, log_file: str,
                  log_dirs: Sequence[Path] = DEFAULT_LOG_DIRS) -> None:
        level = LEVELS.get(level_name, logging.INFO)
        if level != self.level:
            _levels.want(level)
            _levels.done(self.level)
            self.level = level
        self.stderr_handler.setLevel(level)
        if log_file and self.file_handler is None:
            try:
                stream = open_log_file(log_file, log_dirs)
            except LogFileRefused as e:
                logging.getLogger(__name__).warning("not logging to logFile %s: %s", log_file, e)
                return
            self.file_handler = logging.StreamHandler(stream)
            self._attach(self.file_handler)

    def close(self) -> None:
        for handler in (self.stderr_handler, self.file_handler):
            if handler is None:
                continue
            for name in LOGGER_NAMES:
                logging.getLogger(name).removeHandler(handler)
            if handler is self.file_handler:
                handler.stream.close()  # type: ignore[attr-defined]
            handler.close()
        _levels.done(self.level)


@contextlib.contextmanager
def request_logging(
    stderr: TextIO, container_id: str = "", netns: str = "", ifname: str = ""
) -> Iterator[RequestLogging]:
    """Attach this request's handlers for the duration of the ``with`` block."""
    req = RequestLogging(stderr, container_id, netns, ifname)
    token = _request.set(req.labels)
    try:
        yield req
    finally:
        _request.reset(token)
        req.close()
