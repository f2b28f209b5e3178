"""Per-invocation logging for the CNI plugin.

Records go to the invocation's stderr (the runtime shows it in its logs) and, when the netconf
sets ``logFile``, to that file. Level comes from ``logLevel`` (sriov-cni names: panic, error,
warning, info, debug; default info). Every record carries ``container_id``, ``netns`` and
``ifname``. Works for concurrent requests in the agent: handlers are attached per request and
only accept records emitted in that request's context (a :class:`contextvars.ContextVar`).
"""

from __future__ import annotations

import contextlib
import contextvars
import itertools
import logging
from collections.abc import Iterator
from typing import TextIO

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


class RequestLogging:
    """Handlers of one invocation; ``configure()`` may be called again once the netconf is known."""

    def __init__(self, stderr: TextIO, container_id: str, netns: str, ifname: str) -> None:
        self.request_id = next(_ids)
        self.filter = _RequestFilter(self.request_id)
        self.labels = (self.request_id, container_id or "-", netns or "-", ifname or "-")
        self.stderr_handler = logging.StreamHandler(stderr)
        self.file_handler: logging.Handler | None = None
        self._setup(self.stderr_handler, logging.INFO)

    def _setup(self, handler: logging.Handler, level: int) -> None:
        handler.setLevel(level)
        handler.setFormatter(logging.Formatter(FORMAT))
        handler.addFilter(self.filter)
        for name in LOGGER_NAMES:
            logger = logging.getLogger(name)
            if logger.level == logging.NOTSET or logger.level > level:
                logger.setLevel(level)
            logger.addHandler(handler)

    def configure(self, level_name: str, log_file: str) -> None:
        level = LEVELS.get(level_name, logging.INFO)
        self.stderr_handler.setLevel(level)
        for name in LOGGER_NAMES:
            logger = logging.getLogger(name)
            if logger.level > level:
                logger.setLevel(level)
        if log_file and self.file_handler is None:
            try:
                self.file_handler = logging.FileHandler(log_file, encoding="utf-8")
            except OSError as e:
                logging.getLogger(__name__).warning("cannot open logFile %s: %s", log_file, e)
                return
            self._setup(self.file_handler, level)

    def close(self) -> None:
        for handler in (self.stderr_handler, self.file_handler):
            if handler is None:
                continue
            for name in LOGGER_NAMES:
                logging.getLogger(name).removeHandler(handler)
            handler.close()


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
