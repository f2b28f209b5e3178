"""The agent's worker pool gives up on workers that cannot start (no endless respawn loop)."""

from __future__ import annotations

import signal

from cni import agent_workers
from cni.agent_workers import WorkerPool


def test_workers_that_keep_failing_at_start_stop_the_agent(monkeypatch) -> None:
    monkeypatch.setattr(agent_workers, "RESPAWN_BACKOFF", 0.0)
    previous = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    try:
        assert WorkerPool(2, lambda: 1).run() == 1  # every worker exits 1 at once
    finally:
        signal.signal(signal.SIGTERM, previous[0])
        signal.signal(signal.SIGINT, previous[1])
