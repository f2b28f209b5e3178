"""Test hook: turn ``SRIOV_CNI_FAULT=<step>:<action>`` into the plugin's fault-injection seam.

Inert unless the variable is set. The VF mode calls ``ctx.faults(step)`` just before each ADD
step (:data:`cni.vf.ADD_STEPS`: snapshot, pf-config, move, rename, mac-mtu, up, ipam,
save-result), the fallback mode likewise (:data:`cni.fallback.ADD_STEPS`: record, vlan-parent,
create, rename, up, ipam, save-result); the hook acts when ``step`` matches. Actions: ``kill``
SIGKILLs the running process (standalone plugin, or the agent serving the request) - a crash
at that exact point;
``raise`` raises :class:`InjectedFault` (the mode rolls back); ``eio`` raises ``OSError(EIO)``
(the state store's writes call the hook with ``write-record-pending``, ``write-record-complete``,
``write-owner``, ``write-tombstone``: a failing disk); ``stop`` sends the process SIGSTOP, so a
test can run another verb before it SIGCONTs it (forced interleavings; the plugin calls
``attachment-lock`` just before taking the per-attachment lock). Standalone mode reads the
invocation's environment; the agent reads its own (the shim forwards only ``CNI_*``).
Used by tests/reliability; never set it in production.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
from collections.abc import Callable

log = logging.getLogger(__name__)
FAULT_ENV = "SRIOV_CNI_FAULT"
ACTIONS = ("kill", "raise", "eio", "stop")


class InjectedFault(RuntimeError):
    """The failure ``<step>:raise`` injects."""


def fault_hook(spec: str | None) -> Callable[[str], None] | None:
    """The seam for ``spec`` (``"<step>:kill"``), or None when unset or malformed (logged)."""
    if not spec:
        return None
    step, _, action = spec.partition(":")
    if not step or action not in ACTIONS:
        log.warning("ignoring %s=%r: expected <step>:{kill,raise,eio,stop}", FAULT_ENV, spec)
        return None

    def hook(current: str) -> None:
        if current != step:
            return
        log.warning("fault injection: %s at step %s", action, step)
        if action == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if action == "stop":
            os.kill(os.getpid(), signal.SIGSTOP)
            return  # continued by the test
        if action == "eio":
            raise OSError(errno.EIO, f"injected I/O error at {step}")
        raise InjectedFault(f"injected fault at step {step}")

    return hook
