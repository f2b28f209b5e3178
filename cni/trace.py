"""Per-request step timings: where one ADD/DEL spends its time inside the plugin.

Off by default and then nearly free (one ContextVar lookup per step). On when the plugin's
process has ``SRIOV_CNI_TRACE=1`` in its environment (the agent's, or a standalone shim's),
or the agent runs with ``--trace``. Each traced request logs one line on the
``cni.trace`` logger (so it reaches the request's stderr and the agent's log)::

    trace ADD 18.41 ms: parse 0.09, state.load 0.04, netlink.create_macvlan 1.21, ...

Steps are named by the code that opens them (:func:`step`); :class:`Traced` wraps
the netlink handle, the IPAM runner and the host so that every call on them is a step
(``netlink.<method>``, ``ipam.<verb>``, ``host.<method>``). Steps
with the same name are summed and shown with a count (``netlink.link 2.10/3``).
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

log = logging.getLogger(__name__)
TRACE_ENV = "SRIOV_CNI_TRACE"

_current: contextvars.ContextVar[StepTimes | None] = contextvars.ContextVar(
    "cni_trace", default=None
)


class StepTimes:
    """Accumulated durations of the named steps of one request (insertion ordered)."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.totals: dict[str, float] = {}
        self.counts: dict[str, int] = {}

    def add(self, name: str, seconds: float) -> None:
        self.totals[name] = self.totals.get(name, 0.0) + seconds
        self.counts[name] = self.counts.get(name, 0) + 1

    def summary(self) -> str:
        parts = []
        for name, seconds in self.totals.items():
            count = self.counts[name]
            parts.append(f"{name} {seconds * 1e3:.2f}" + (f"/{count}" if count > 1 else ""))
        return ", ".join(parts)

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.start) * 1e3


_switched_on = False


def switch_on() -> None:
    """Trace every request of this process (the agent's ``--trace`` / ``--log-level debug``)."""
    global _switched_on
    _switched_on = True


def enabled(env: Mapping[str, str] | None = None) -> bool:
    """Tracing is on for this process: :func:`switch_on` or ``SRIOV_CNI_TRACE=1``."""
    value = (os.environ if env is None else env).get(TRACE_ENV, "")
    return _switched_on or value.lower() in ("1", "true", "yes")


@contextlib.contextmanager
def request(verb: str, on: bool) -> Iterator[StepTimes | None]:
    """Collect the steps of one request and log them when it ends (no-op when ``on`` is false)."""
    if not on:
        yield None
        return
    times = StepTimes()
    token = _current.set(times)
    try:
        yield times
    finally:
        _current.reset(token)
        log.info("trace %s %.2f ms: %s", verb, times.elapsed_ms(), times.summary())


@contextlib.contextmanager
def step(name: str) -> Iterator[None]:
    """Time the ``with`` block as step ``name`` of the current traced request (if any)."""
    times = _current.get()
    if times is None:
        yield
        return
    t0 = time.perf_counter()
    try:
        yield
    finally:
        times.add(name, time.perf_counter() - t0)


def active() -> bool:
    return _current.get() is not None


class Traced:
    """Wraps a handle (netlink, IPAM runner, host): each public method call is a step.

    ``Traced(netlink, "netlink")`` times ``netlink.link(...)`` as step ``netlink.link``.
    """

    def __init__(self, inner: Any, prefix: str) -> None:
        self._inner = inner
        self._prefix = prefix

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not callable(attr) or name.startswith("_"):
            return attr
        label = f"{self._prefix}.{name}"

        def timed(*args: Any, **kwargs: Any) -> Any:
            with step(label):
                return attr(*args, **kwargs)

        return timed


def maybe_traced(value: Any, prefix: str) -> Any:
    """``value`` wrapped in :class:`Traced` while the current request is traced, else itself."""
    return Traced(value, prefix) if active() else value


def traced_factory(factory: Callable[[], Any], prefix: str) -> Callable[[], Any]:
    """A lazy getter whose handle is wrapped in :class:`Traced` while tracing."""

    def get() -> Any:
        return maybe_traced(factory(), prefix)

    return get
