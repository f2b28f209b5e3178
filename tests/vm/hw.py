"""Real SR-IOV hardware helpers for the VM tier (tests/vm), driven through sysfs.

Everything takes the sysfs root as a parameter (``/`` in the testbed) so the same helpers
read the emulated tree too. Waiting is polling with a deadline, never a fixed sleep.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

ROOT = Path("/")


class HardwareTimeout(AssertionError):
    """The kernel did not reach an expected state before the deadline."""


def wait_for(probe: Callable[[], T | None], *, what: str, timeout: float = 20.0,
             interval: float = 0.05) -> T:
    """Poll ``probe`` until it returns something truthy; raise naming ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise HardwareTimeout(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RealPf:
    """An SR-IOV capable PCI function found in sysfs."""

    address: str
    driver: str | None
    total_vfs: int
    root: Path = ROOT

    @property
    def device_dir(self) -> Path:
        return self.root / "sys/bus/pci/devices" / self.address

    @property
    def netdev(self) -> str | None:
        names = netdevs_of(self.device_dir)
        return names[0] if names else None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RealVf:
    """One VF of a :class:`RealPf`, as sysfs shows it right now."""

    index: int
    address: str
    pf: RealPf

    @property
    def device_dir(self) -> Path:
        return self.pf.root / "sys/bus/pci/devices" / self.address

    @property
    def driver(self) -> str | None:
        return driver_of(self.device_dir)

    @property
    def netdev(self) -> str | None:
        names = netdevs_of(self.device_dir)
        return names[0] if names else None

    @property
    def iommu_group(self) -> int | None:
        link = self.device_dir / "iommu_group"
        return int(os.readlink(link).rsplit("/", 1)[-1]) if link.is_symlink() else None


def driver_of(device_dir: Path) -> str | None:
    link = device_dir / "driver"
    return os.readlink(link).rsplit("/", 1)[-1] if link.is_symlink() else None


def netdevs_of(device_dir: Path) -> tuple[str, ...]:
    try:
        return tuple(sorted(p.name for p in (device_dir / "net").iterdir()))
    except FileNotFoundError:
        return ()


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def find_sriov_pfs(root: Path = ROOT) -> tuple[RealPf, ...]:
    """Every PCI function with ``sriov_totalvfs > 0``, sorted by address."""
    devices = root / "sys/bus/pci/devices"
    found = []
    for dev in sorted(devices.iterdir()) if devices.is_dir() else ():
        total = _read_int(dev / "sriov_totalvfs")
        if total:
            found.append(RealPf(address=dev.name, driver=driver_of(dev), total_vfs=total,
                                root=root))
    return tuple(found)


def num_vfs(pf: RealPf) -> int:
    return _read_int(pf.device_dir / "sriov_numvfs") or 0


def set_num_vfs(pf: RealPf, count: int) -> None:
    """Set ``sriov_numvfs`` (going through 0 first, as the kernel demands)."""
    path = pf.device_dir / "sriov_numvfs"
    if count and num_vfs(pf) not in (0, count):
        path.write_text("0")
    if num_vfs(pf) != count:
        path.write_text(str(count))


def vfs_of(pf: RealPf) -> tuple[RealVf, ...]:
    """The PF's VFs from its ``virtfnN`` links, ordered by index."""
    vfs = []
    for link in pf.device_dir.glob("virtfn*"):
        index = int(link.name.removeprefix("virtfn"))
        vfs.append(RealVf(index=index, address=os.readlink(link).rsplit("/", 1)[-1], pf=pf))
    return tuple(sorted(vfs, key=lambda vf: vf.index))


def wait_for_vf_netdevs(vfs: Iterable[RealVf], timeout: float = 20.0) -> tuple[str, ...]:
    """Wait until every VF has its kernel netdev; returns the names in VF order."""
    pending = tuple(vfs)
    return wait_for(lambda: _all_netdevs(pending), what="VF netdevs to appear",
                    timeout=timeout)


def _all_netdevs(vfs: tuple[RealVf, ...]) -> tuple[str, ...] | None:
    names = tuple(vf.netdev for vf in vfs)
    return names if all(names) else None  # type: ignore[return-value]


def bind_driver(vf: RealVf, driver: str | None, timeout: float = 20.0) -> None:
    """Rebind a VF: ``driver_override`` + unbind + ``drivers_probe`` (None = default driver)."""
    pci = vf.pf.root / "sys/bus/pci"
    (vf.device_dir / "driver_override").write_text(driver or "\n")
    if vf.driver is not None:
        (vf.device_dir / "driver" / "unbind").write_text(vf.address)
    try:
        (pci / "drivers_probe").write_text(vf.address)
    except OSError as e:
        if e.errno != errno.ENODEV:  # no driver wanted it; the caller's assertion says so
            raise
    if driver is not None:
        wait_for(lambda: vf.driver == driver, what=f"{vf.address} to bind to {driver}",
                 timeout=timeout)


def read_carrier(ifname: str, root: Path = ROOT) -> bool:
    """``/sys/class/net/<if>/carrier`` is 1 (reading it fails while the link is down)."""
    try:
        return (root / "sys/class/net" / ifname / "carrier").read_text().strip() == "1"
    except OSError:
        return False
