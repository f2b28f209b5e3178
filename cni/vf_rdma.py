"""The VF's RDMA devices follow its netdev into the pod when the RDMA subsystem is exclusive.

In ``rdma system set netns exclusive`` mode an RDMA device is visible in one netns only, so a
pod gets the VF's RDMA device (``mlx5_3``, ...) only if it is moved there; in the default shared
mode every netns sees every device and there is nothing to do. Upstream does this in the chained
rdma-cni (k8snetworkplumbingwg/rdma-cni), which *fails* ADD in shared mode; we are one plugin, so
shared mode (or a kernel without the RDMA core) is simply "nothing to move".

- ADD (after the netdev moved): the names are recorded first (a crash leaves a record that says
  where they may be), then each device is moved from the host into the pod netns; the rollback
  moves it back (registered per device, LIFO).
- DEL (before the netdev goes home): each device is moved from the pod netns back to the host.
  When the pod netns is gone the kernel has already returned its RDMA devices to the initial
  netns (``rdma_dev_exit_net``, asynchronously): we only check that, and warn if one is missing.

Which devices belong to the VF is discovery's answer (``<pci>/infiniband/``, as rdmamap):
a soft-RoCE ``rxe`` device on top of a VF netdev is not the VF's (see docs/cni.md "RDMA").
The kernel calls go through ``ctx.host().rdma`` (:class:`sriov.netlink_rdma.RdmaOps`).
"""

from __future__ import annotations

import errno
import functools
import os
import time
from collections.abc import Callable
from typing import Any

from cni.mode import AttachmentContext
from sriov.errors import NetlinkOpError
from sriov.types import VirtualFunction

HOME_TIMEOUT = 10.0
"""How long DEL waits for a destroyed pod netns's RDMA devices to show up in the host."""
POLL_INTERVAL = 0.05
NO_RDMA_CORE = (errno.EPROTONOSUPPORT, errno.ENOENT)


def exclusive(ctx: AttachmentContext) -> bool:
    """Whether RDMA devices must be moved (exclusive mode); a kernel without RDMA: no."""
    from sriov.netlink_rdma import NetnsMode  # stdlib-only module, loaded only for RDMA VFs

    try:
        mode = ctx.host().rdma.netns_mode()
    except NetlinkOpError as e:
        if e.errno in NO_RDMA_CORE:
            ctx.log.debug("RDMA: no RDMA netlink in this kernel (%s); nothing to move", e)
            return False
        raise
    if mode is not NetnsMode.EXCLUSIVE:
        ctx.log.debug("RDMA: subsystem netns mode is %s; devices stay where they are", mode)
        return False
    return True


def names_to_move(ctx: AttachmentContext, vf: VirtualFunction) -> tuple[str, ...]:
    """The VF's RDMA devices when they must follow it into the pod, else ``()``."""
    names = tuple(r.name for r in vf.rdma_devices)
    if not names or not exclusive(ctx):
        return ()
    return names


def move_into_pod(ctx: AttachmentContext, names: tuple[str, ...], netns: str,
                  on_undo: Callable[[str, Callable[[], object]], object]) -> None:
    """Move each device host -> ``netns``; ``on_undo(what, fn)`` registers its rollback."""
    rdma = ctx.host().rdma
    for name in names:
        rdma.move(name, None, netns)
        on_undo(f"move RDMA device {name} back", functools.partial(rdma.move, name, netns, None))
        ctx.log.info("RDMA: moved %s into %s", name, netns)


def move_home(ctx: AttachmentContext, names: tuple[str, ...], netns: str) -> None:
    """DEL: each device from ``netns`` back to the host (checked when ``netns`` is gone).

    Best-effort like the rest of DEL: a device that cannot be found anywhere is logged, not
    fatal (DEL must succeed when things are gone); a refused move of a device still in the pod
    raises, so the record stays and the runtime's retry can finish."""
    if not names:
        return
    rdma = ctx.host().rdma
    if netns and os.path.exists(netns):
        in_pod = set(rdma.links(netns))
        for name in names:
            if name in in_pod:
                rdma.move(name, netns, None)
                ctx.log.info("RDMA: moved %s from %s back to the host", name, netns)
    _wait_home(ctx, rdma, names)


def _wait_home(ctx: AttachmentContext, rdma: Any, names: tuple[str, ...]) -> None:
    deadline = time.monotonic() + HOME_TIMEOUT
    while True:
        missing = [n for n in names if n not in rdma.links(None)]
        if not missing:
            return
        if time.monotonic() >= deadline:
            ctx.log.warning("RDMA: %s not back in the host netns after %.0fs (driver removed, "
                            "or moved elsewhere meanwhile)", ", ".join(missing), HOME_TIMEOUT)
            return
        time.sleep(POLL_INTERVAL)  # pod netns teardown is asynchronous in the kernel


__all__ = ["move_home", "move_into_pod", "names_to_move"]
