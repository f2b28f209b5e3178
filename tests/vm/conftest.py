"""Fixtures for the VM tier: tests that need a real SR-IOV kernel (hack/vm/test.sh).

Every test under tests/vm gets the ``vm`` marker and is skipped, with the reason printed,
when the kernel has no PCI function with ``sriov_totalvfs > 0`` (e.g. on the host), so the
same files run in the testbed and skip elsewhere.

Fixtures (see docs/vm-testbed.md):
- ``sriov_pfs``: every SR-IOV PF (:class:`tests.vm.hw.RealPf`), sorted by PCI address.
- ``sriov_pf``: the first one; ``sriov_pf_pair``: the first two (same QEMU hub = same wire).
- ``enable_vfs(pf, count=4, wait_netdevs=True) -> tuple[RealVf, ...]``: sets
  ``sriov_numvfs``; at teardown every PF it touched goes back to 0 VFs and its link
  goes back to its previous admin state.
- ``pf_with_vfs``: ``sriov_pf`` with 4 VFs whose igbvf netdevs exist.
"""

from __future__ import annotations

import importlib
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

from tests.conftest import require_root
from tests.vm import hw

VM_DIR = Path(__file__).resolve().parent
NO_SRIOV_REASON = (
    "not a real SR-IOV kernel: no PCI function has sriov_totalvfs > 0 "
    "(these tests run inside the QEMU testbed: hack/vm/test.sh)"
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if VM_DIR in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.vm)


@pytest.fixture(autouse=True)
def _real_sriov_kernel() -> None:
    if not hw.find_sriov_pfs():
        pytest.skip(NO_SRIOV_REASON)
    require_root()


def colleague_module(name: str) -> ModuleType:
    """Import a module of the stack; a clear failure (not a skip) when it is missing."""
    try:
        return importlib.import_module(name)
    except ImportError as e:
        pytest.fail(f"{name} is not importable yet ({e}); this VM test exercises it "
                    "against the real kernel (contract: docs/architecture.md)", pytrace=False)


def link_is_up(ifname: str) -> bool:
    flags = Path("/sys/class/net", ifname, "flags").read_text().strip()
    return bool(int(flags, 16) & 0x1)


def set_link(ifname: str, up: bool) -> None:
    subprocess.run(["ip", "link", "set", ifname, "up" if up else "down"], check=True)


def link_with_carrier(ifname: str, timeout: float = 30.0) -> None:
    """Set ``ifname`` up and wait for carrier (igbvf VFs get it 6-7 s after their PF)."""
    set_link(ifname, up=True)
    hw.wait_for(lambda: hw.read_carrier(ifname), what=f"carrier on {ifname}", timeout=timeout)


@pytest.fixture(scope="session")
def sriov_pfs() -> tuple[hw.RealPf, ...]:
    pfs = hw.find_sriov_pfs()
    if not pfs:
        pytest.skip(NO_SRIOV_REASON)
    return pfs


@pytest.fixture
def sriov_pf(sriov_pfs: tuple[hw.RealPf, ...]) -> hw.RealPf:
    return sriov_pfs[0]


@pytest.fixture
def sriov_pf_pair(sriov_pfs: tuple[hw.RealPf, ...]) -> tuple[hw.RealPf, hw.RealPf]:
    if len(sriov_pfs) < 2:
        pytest.skip(f"needs two SR-IOV PFs, this kernel has {len(sriov_pfs)}")
    return sriov_pfs[0], sriov_pfs[1]


EnableVfs = Callable[..., tuple[hw.RealVf, ...]]


def _exactly(vfs: tuple[hw.RealVf, ...], count: int) -> tuple[hw.RealVf, ...] | None:
    return vfs if len(vfs) == count else None


@pytest.fixture
def enable_vfs() -> Iterator[EnableVfs]:
    touched: dict[str, tuple[hw.RealPf, str | None, bool]] = {}

    def enable(pf: hw.RealPf, count: int = 4, *, wait_netdevs: bool = True,
               ) -> tuple[hw.RealVf, ...]:
        if pf.address not in touched:
            netdev = pf.netdev
            touched[pf.address] = (pf, netdev, link_is_up(netdev) if netdev else False)
        hw.set_num_vfs(pf, count)
        vfs = hw.wait_for(lambda: _exactly(hw.vfs_of(pf), count),
                          what=f"{count} virtfn links on {pf.address}")
        if wait_netdevs:
            hw.wait_for_vf_netdevs(vfs)
        return vfs

    yield enable
    for pf, netdev, was_up in touched.values():
        hw.set_num_vfs(pf, 0)
        if netdev is not None and Path("/sys/class/net", netdev).exists():
            set_link(netdev, was_up)


@pytest.fixture
def pf_with_vfs(sriov_pf: hw.RealPf, enable_vfs: EnableVfs,
                ) -> tuple[hw.RealPf, tuple[hw.RealVf, ...]]:
    return sriov_pf, enable_vfs(sriov_pf, 4)


@pytest.fixture
def pf_up_with_vfs(pf_with_vfs: tuple[hw.RealPf, tuple[hw.RealVf, ...]],
                   ) -> tuple[hw.RealPf, tuple[hw.RealVf, ...]]:
    """``pf_with_vfs`` with the PF link up and carrier: igb takes max_tx_rate only then.

    ``enable_vfs`` puts the PF link back the way it was at teardown."""
    pf, _ = pf_with_vfs
    assert pf.netdev is not None
    link_with_carrier(pf.netdev)
    return pf_with_vfs
