"""DDP profile of Intel 700/800-series functions, for the ``ddpProfiles`` selector.

Upstream runs ``ddptool -l -a -j -s <pci>`` and reads ``DDPInventory.DDPpackage.Name``
from its JSON (its devlink probe passes bus and device swapped, so in practice ddptool
is what answers). We do the same, but only:

- when some pool uses ``ddpProfiles`` (the scanner asks; nobody else pays for it),
- when ``ddptool`` is on ``PATH`` (else every device's profile is unknown and a
  ``ddpProfiles`` selector matches nothing, with one warning),
- as an argv list with a timeout (a hung tool cannot stall discovery), once per device
  and scan.

Any failure (exit code, timeout, bad JSON, no name) means "unknown" for that device.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import subprocess
from collections.abc import Callable

from sriov import validate
from sriov.types import Device, DeviceClass, Inventory

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 5.0
DdpProbe = Callable[[str], "str | None"]


def parse_ddptool(stdout: bytes) -> str | None:
    """``DDPInventory.DDPpackage.Name`` of ``ddptool -j`` output; ``None`` if absent."""
    try:
        doc = json.loads(stdout)
        name = doc["DDPInventory"]["DDPpackage"]["name"]
    except (ValueError, KeyError, TypeError):
        return None
    return name if isinstance(name, str) and name else None


class DdpTool:
    """Runs ``ddptool`` for one PCI function."""

    def __init__(self, executable: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.executable = executable
        self.timeout_s = timeout_s

    @classmethod
    def find(cls, path: str | None = None) -> DdpTool | None:
        found = shutil.which("ddptool", path=path)
        return cls(found) if found else None

    def __call__(self, pci: str) -> str | None:
        argv = [self.executable, "-l", "-a", "-j", "-s", validate.pci_address(pci)]
        try:
            done = subprocess.run(argv, capture_output=True, timeout=self.timeout_s,
                                  check=False)
        except (OSError, subprocess.TimeoutExpired) as e:
            log.info("ddptool failed pci=%s error=%s", pci, e)
            return None
        return parse_ddptool(done.stdout) if done.returncode == 0 else None


def with_ddp_profiles(inventory: Inventory, probe: DdpProbe) -> Inventory:
    """The inventory with ``ddp_profile`` filled in for every netDevice candidate."""
    def fill(devices: tuple[Device, ...]) -> tuple[Device, ...]:
        return tuple(dataclasses.replace(d, ddp_profile=probe(d.address))
                     if d.device_class in (DeviceClass.VF, DeviceClass.NIC) else d
                     for d in devices)
    return dataclasses.replace(inventory, vfs=fill(inventory.vfs), others=fill(inventory.others))
