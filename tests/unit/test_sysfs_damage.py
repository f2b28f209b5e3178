"""Damage every entry of an emulated X710 + ConnectX-5 tree, one at a time: discovery either
answers (skipping what it cannot read, with a reason) or raises a typed SriovError.

Never a crash."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from sriov.emulate.profiles import INTEL_X710, MELLANOX_CX5
from sriov.emulate.tree import PfSpec, SysfsTreeBuilder
from sriov.errors import SriovError
from sriov.sysfs import SysfsReader


def build(root: Path) -> None:
    b = SysfsTreeBuilder(root)
    b.add_pf(PfSpec(address="0000:3b:00.0", ifname="ens1f0", profile=INTEL_X710, num_vfs=2,
                    vf_drivers={1: "vfio-pci"}))
    b.add_pf(PfSpec(address="0000:5e:00.0", ifname="enp94s0f0", profile=MELLANOX_CX5, num_vfs=2))


@contextlib.contextmanager
def damaged(path: Path, how: str) -> Iterator[bool]:
    """Hide the entry, fill a file with garbage, or put a directory in a file's place; then put
    the original back (renames, so one tree serves every case)."""
    aside = path.with_name(path.name + ".st-aside")
    if how != "delete" and (path.is_symlink() or not path.is_file()):
        yield False
        return
    path.rename(aside)
    try:
        if how == "garbage":
            path.write_bytes(b"\xff\x00not a sysfs value\n")
        elif how == "file-becomes-dir":
            path.mkdir()
        yield True
    finally:
        if path.is_dir() and not path.is_symlink():
            path.rmdir()
        elif path.exists() or path.is_symlink():
            path.unlink()
        aside.rename(path)


def read_everything(reader: SysfsReader) -> None:
    inventory = reader.inventory()
    for pf in inventory.pfs:
        reader.pf(pf.address)
    for vf in inventory.vfs:
        reader.vf(vf.address)
        reader.vf_netdev(vf.address)


@pytest.mark.parametrize("how", ["delete", "garbage", "file-becomes-dir"])
def test_any_damaged_sysfs_entry_gives_a_typed_error_or_a_skip(tmp_path: Path, how: str) -> None:
    build(tmp_path)
    entries = sorted(tmp_path.rglob("*"), key=str)
    assert len(entries) > 100
    crashes = []
    for entry in entries:
        with damaged(entry, how) as changed:
            if not changed:
                continue
            try:
                read_everything(SysfsReader(tmp_path))
            except SriovError:
                pass  # typed, names what is wrong
            except Exception as e:  # this is what the test hunts for
                crashes.append(f"{entry.relative_to(tmp_path)}: {type(e).__name__}: {e}")
    assert crashes == []
