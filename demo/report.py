"""Human-readable progress: numbered step lines with ✓/✗, timings, indented details.

Pure formatting over a ``TextIO``; the clock is a parameter so tests can pin it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import TextIO

OK, FAIL = "✓", "✗"


class StepFailed(Exception):
    """A demo step failed; the message is already fit for a person."""


class Report:
    def __init__(self, out: TextIO, clock: Callable[[], float] = time.monotonic) -> None:
        self.out = out
        self.clock = clock
        self.number = 0
        self.failed: list[str] = []
        self.started = clock()

    def detail(self, text: str) -> None:
        for line in text.rstrip("\n").splitlines():
            self.out.write(f"      {line}\n")
        self.out.flush()

    def note(self, text: str) -> None:
        self.out.write(f"{text}\n")
        self.out.flush()

    @contextlib.contextmanager
    def step(self, title: str) -> Iterator[None]:
        """Run one numbered step; prints ✓ with its duration, or ✗ with the reason and re-raises."""
        self.number += 1
        number = self.number
        begin = self.clock()
        self.out.write(f"[{number}] {title} ...\n")
        self.out.flush()
        try:
            yield
        except BaseException as e:
            reason = str(e) or type(e).__name__
            if isinstance(e, KeyboardInterrupt):
                reason = "interrupted"
            self.failed.append(f"[{number}] {title}: {reason}")
            self.out.write(f"{FAIL}  [{number}] {title} failed after {self._since(begin)}: "
                           f"{reason}\n")
            self.out.flush()
            raise
        self.out.write(f"{OK}  [{number}] {title} ({self._since(begin)})\n")
        self.out.flush()

    def check(self, ok: bool, text: str) -> bool:
        """One verdict line inside a step or the summary."""
        self.out.write(f"      {OK if ok else FAIL} {text}\n")
        self.out.flush()
        if not ok:
            self.failed.append(text)
        return ok

    def total(self) -> str:
        return self._since(self.started)

    def _since(self, begin: float) -> str:
        return f"{self.clock() - begin:.2f}s"
