"""The uplink representor of a PF in switchdev mode: the PF name upstream matches
``pfNames`` against.

In switchdev mode the PF's ``net/`` directory holds the uplink representor *and* one
representor per VF/SF (``pf0vf3``), all with the eswitch's ``phys_switch_id``. Upstream's
device plugin (``utils.GetPfName`` -> sriovnet ``GetUplinkRepresentor``) then names the
PF by the netdev whose ``phys_port_name`` is ``p<N>``, not by the first entry of
``net/``. Upstream asks devlink for the eswitch mode first; we read sysfs only: a netdev
with a ``phys_switch_id`` and a ``p<N>`` port name is the uplink, unless the driver's
``compat/devlink/mode`` file (MLNX_OFED kernels) says the eswitch is not in switchdev
mode. In legacy mode the PF has a single netdev, so the answer is the same either way.

Pure reads under a device directory; an attribute a driver does not support (the kernel
answers ``EOPNOTSUPP`` on read) or that is absent counts as unset.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

UPLINK_PORT_NAME = re.compile(r"p\d+")
"""``phys_port_name`` of a physical port (sriovnet's ``physPortRepRegex``)."""
SWITCHDEV = "switchdev"


def _attr(path: str) -> str | None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        return os.read(fd, 256).decode("ascii", "replace").strip()
    except OSError:  # EOPNOTSUPP: the driver has no such attribute
        return None
    finally:
        os.close(fd)


def is_uplink(netdev_dir: str) -> bool:
    """Is the netdev at ``netdev_dir`` (``<pci>/net/<if>``) an eswitch's uplink port?"""
    if not _attr(os.path.join(netdev_dir, "phys_switch_id")):
        return False
    mode = _attr(os.path.join(netdev_dir, "compat", "devlink", "mode"))
    if mode is not None and mode != SWITCHDEV:
        return False
    port = _attr(os.path.join(netdev_dir, "phys_port_name"))
    return port is not None and UPLINK_PORT_NAME.fullmatch(port) is not None


def uplink_representor(pf_dir: str, netdevs: Sequence[str]) -> str | None:
    """The first of ``netdevs`` (names under ``<pf_dir>/net``) that is an uplink port, or
    ``None`` (legacy mode, or a driver without switchdev)."""
    net = os.path.join(pf_dir, "net")
    return next((n for n in netdevs if is_uplink(os.path.join(net, n))), None)
