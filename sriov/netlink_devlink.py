"""RDMA through devlink: the ``enable_rdma`` parameter, upstream's second RDMA test.

Upstream's device plugin calls a device RDMA-capable when ``<pci>/infiniband/`` has an
entry **or** ``devlink dev param show pci/<pci> name enable_rdma`` is true (``auxiliary/
<sf>`` for SFs). The devlink answer survives what hides the sysfs one: an RDMA device
moved into a pod's netns (exclusive mode) is gone from the host's ``infiniband/`` view.

Cost, so discovery never slows down:

- one ``DEVLINK_CMD_PARAM_GET`` dump per call (every parameter of every devlink
  instance, one netlink round trip), never one request per device;
- asked only when a pool selects by ``isRdma: true`` (the device plugin's scanner);
- a kernel without devlink (no ``devlink`` generic-netlink family, this kernel: ``ENOENT``
  on the family lookup, about a millisecond) is remembered and never asked again;
- pyroute2's devlink module is imported on the first call only.

:func:`enabled_devices` is the pure part (decoded replies -> ``{"pci/<addr>", ...}``).
"""

from __future__ import annotations

import dataclasses
import errno
import logging
from collections.abc import Callable, Iterable
from typing import Any

from sriov.types import Device, Inventory

log = logging.getLogger(__name__)

ENABLE_RDMA = "enable_rdma"
PARAM_TYPE_BOOL = 6
"""``DEVLINK_PARAM_TYPE_BOOL`` (= ``NLA_FLAG``): the value's ``DATA`` attribute is present
when true and absent when false."""
DumpParams = Callable[[], Iterable[Any]]
"""Returns the decoded ``DEVLINK_CMD_PARAM_GET`` dump replies (pyroute2 messages)."""


def _attrs(nla: Any) -> list[tuple[str, Any]]:
    """``[(name, value), ...]`` of a decoded pyroute2 message or nested attribute."""
    raw = nla.get("attrs", []) if hasattr(nla, "get") else []
    return [(a[0], a[1]) for a in raw]


def _first(nla: Any, name: str) -> Any:
    return next((v for k, v in _attrs(nla) if k == name), None)


def rdma_enabled(param: Any) -> bool | None:
    """The value of one decoded ``DEVLINK_ATTR_PARAM`` if it is a true/false
    ``enable_rdma``; ``None`` for other parameters. As upstream, the first value counts
    (``enable_rdma`` has one, of cmode ``driverinit``)."""
    if _first(param, "DEVLINK_ATTR_PARAM_NAME") != ENABLE_RDMA:
        return None
    if _first(param, "DEVLINK_ATTR_PARAM_TYPE") != PARAM_TYPE_BOOL:
        return None  # upstream: "value is not a bool"
    values = _first(param, "DEVLINK_ATTR_PARAM_VALUES_LIST")
    first = next((v for k, v in _attrs(values) if k == "DEVLINK_ATTR_PARAM_VALUE"), None)
    if first is None:
        return False
    return any(k == "DEVLINK_ATTR_PARAM_VALUE_DATA" for k, _ in _attrs(first))


def enabled_devices(replies: Iterable[Any]) -> frozenset[str]:
    """``"<bus>/<device>"`` (``pci/0000:3b:02.0``, ``auxiliary/mlx5_core.sf.4``) of every
    devlink instance whose ``enable_rdma`` is true, from a ``PARAM_GET`` dump."""
    found: set[str] = set()
    for reply in replies:
        bus = _first(reply, "DEVLINK_ATTR_BUS_NAME")
        dev = _first(reply, "DEVLINK_ATTR_DEV_NAME")
        param = _first(reply, "DEVLINK_ATTR_PARAM")
        if bus and dev and param is not None and rdma_enabled(param):
            found.add(f"{bus}/{dev}")
    return frozenset(found)


def devlink_handle(device: Device) -> str:
    """The devlink instance upstream asks for ``device``."""
    return f"auxiliary/{device.aux_name}" if device.aux_name else f"pci/{device.address}"


def with_devlink_rdma(inventory: Inventory, enabled: frozenset[str]) -> Inventory:
    """The inventory with ``is_rdma`` also true for devices devlink says are RDMA-enabled."""
    if not enabled:
        return inventory

    def fill(devices: tuple[Device, ...]) -> tuple[Device, ...]:
        return tuple(dataclasses.replace(d, is_rdma=True)
                     if not d.is_rdma and devlink_handle(d) in enabled else d for d in devices)
    return dataclasses.replace(inventory, vfs=fill(inventory.vfs), others=fill(inventory.others))


def _pyroute2_dump() -> list[Any]:
    """One ``PARAM_GET`` dump through pyroute2's devlink socket (``DL`` has no call for it,
    its message map has the attributes)."""
    from pyroute2.netlink import NLM_F_DUMP, NLM_F_REQUEST
    from pyroute2.netlink.devlink import DEVLINK_NAMES, DevlinkSocket, devlinkcmd
    from pyroute2.netlink.exceptions import NetlinkError

    sock = DevlinkSocket()
    try:
        sock.bind()  # resolves the genl family: NetlinkError(ENOENT) without devlink
        msg = devlinkcmd()
        msg["cmd"] = DEVLINK_NAMES["DEVLINK_CMD_PARAM_GET"]
        return list(sock.nlm_request(msg, msg_type=sock.prid,
                                     msg_flags=NLM_F_REQUEST | NLM_F_DUMP))
    except NetlinkError as e:
        raise OSError(e.code, str(e)) from e
    finally:
        sock.close()


class DevlinkRdma:
    """``probe()`` -> the devlink handles with ``enable_rdma`` true (empty on any failure).

    ``dump`` is the transport (tests pass their own); a missing devlink family is
    remembered, other errors are logged once and retried on the next call.
    """

    def __init__(self, dump: DumpParams = _pyroute2_dump) -> None:
        self._dump = dump
        self.absent = False
        self._warned = False

    def __call__(self) -> frozenset[str]:
        if self.absent:
            return frozenset()
        try:
            replies = self._dump()
        except OSError as e:  # pyroute2's NetlinkError is an OSError
            if e.errno == errno.ENOENT:
                log.info("no devlink in this kernel; RDMA is read from sysfs only")
                self.absent = True
            elif not self._warned:
                log.warning("devlink enable_rdma query failed, RDMA from sysfs only: %s", e)
                self._warned = True
            return frozenset()
        except (ImportError, RuntimeError) as e:
            log.warning("devlink unavailable, RDMA from sysfs only: %s", e)
            self.absent = True
            return frozenset()
        return enabled_devices(replies)
