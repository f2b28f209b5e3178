"""RDMA add-on (``isRdma``): the device's RDMA devices and their ``/dev/infiniband`` nodes.

Discovery (what rdmamap does for upstream, read from sysfs):
- RDMA devices of a PCI function or SF: the entries of ``<dev>/infiniband/``;
- char devices: entries of ``/sys/class/infiniband_cm`` (``ucmN``),
  ``/sys/class/infiniband_mad`` (``issmN``, ``umadN``) and ``/sys/class/infiniband_verbs``
  (``uverbsN``) whose ``ibdev`` file names the RDMA device. rdmamap keeps only the first
  match per kind; we keep every port's ``umadN``/``issmN`` (a multi-port HCA has one per
  port, and a workload on port 2 needs its own);
- ``/dev/infiniband/rdma_cm`` is added when it exists (as upstream, which stats it).
"""

from __future__ import annotations

import os
import re
from typing import Protocol

from sriov.devclass import _fs
from sriov.devclass.base import AllocOptions, DeviceNode, NodeExists, same_path
from sriov.types import Device, RdmaDevice

RDMA_CM = "/dev/infiniband/rdma_cm"
CHAR_CLASSES = (("infiniband_cm", "ucm"), ("infiniband_mad", "issm"),
                ("infiniband_mad", "umad"), ("infiniband_verbs", "uverbs"))
_NUMBERED = re.compile(r"^([a-z]+)([0-9]+)$")


class CharIndex:
    """``ibdev`` -> its char device names, built once per discovery from ``<sys>/class``."""

    def __init__(self, sys_dir: str) -> None:
        self._by_ibdev: dict[str, list[str]] = {}
        for class_dir, prefix in CHAR_CLASSES:
            base = os.path.join(sys_dir, "class", class_dir)
            found = []
            for name in _fs.entries(base):
                m = _NUMBERED.match(name)
                if m and m.group(1) == prefix:
                    ibdev = _fs.read(os.path.join(base, name, "ibdev"))
                    if ibdev:
                        found.append((int(m.group(2)), name, ibdev))
            for _, name, ibdev in sorted(found):
                self._by_ibdev.setdefault(ibdev, []).append(name)

    def char_devices(self, ibdev: str) -> tuple[str, ...]:
        return tuple(self._by_ibdev.get(ibdev, ()))


class _HasChars(Protocol):
    @property
    def chars(self) -> CharIndex: ...


def discover(dev_dir: str, context: _HasChars) -> tuple[RdmaDevice, ...]:
    """RDMA devices of ``dev_dir``; ``context.chars`` is only built when there is one."""
    return tuple(RdmaDevice(name=name, char_devices=context.chars.char_devices(name))
                 for name in _fs.entries(os.path.join(dev_dir, "infiniband")))


def discover_pkey(dev_dir: str) -> str | None:
    """pKey index 0 of port 1 of the first RDMA device (upstream ``GetPKey``)."""
    names = _fs.entries(os.path.join(dev_dir, "infiniband"))
    if not names:
        return None
    raw = _fs.read(os.path.join(dev_dir, "infiniband", names[0], "ports", "1", "pkeys", "0"))
    return raw.lower() if raw else None


class Rdma:
    all_or_nothing = False
    name = "rdma"

    def applies(self, device: Device, options: AllocOptions) -> bool:
        return options.is_rdma and bool(device.rdma_devices)

    def nodes(self, device: Device, options: AllocOptions,
              exists: NodeExists) -> tuple[DeviceNode, ...]:
        nodes = [same_path(f"/dev/infiniband/{char}")
                 for rdma in device.rdma_devices for char in rdma.char_devices]
        if exists(RDMA_CM):
            nodes.append(same_path(RDMA_CM))
        return tuple(nodes)

    def info(self, device: Device, options: AllocOptions, present: tuple[DeviceNode, ...],
             exists: NodeExists) -> dict[str, str] | None:
        info: dict[str, str] = {}
        for node in present:  # the last node of a kind wins, as upstream's map does
            base = os.path.basename(node.container_path)
            kind = "rdma_cm" if base == "rdma_cm" else (_NUMBERED.match(base) or [0, ""])[1]
            if kind in ("uverbs", "umad", "issm", "rdma_cm"):
                info[kind] = node.container_path
        info["rdma_dev"] = device.rdma_devices[0].name
        return info

    def device_info(self, device: Device, options: AllocOptions) -> dict[str, object] | None:
        return {"rdma-device": ",".join(r.name for r in device.rdma_devices)}


HANDLER = Rdma()
