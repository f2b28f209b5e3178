"""Which state writes are fsynced (issue 13: cost of issue 11's durable writes on ADD)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from cni.errors import CniError
from cni.record import AttachmentMode, AttachmentRecord, VfPart
from cni.state import StateStore

PCI = "0000:3b:02.1"


def _record(**kw: object) -> AttachmentRecord:
    return AttachmentRecord(mode=AttachmentMode.VF, container_id="c1", ifname="net1",
                            network="n", netns="/run/netns/x", device_id=PCI,
                            vf=VfPart(pf="pf0", vf_index=1), **kw)  # type: ignore[arg-type]


@pytest.fixture
def fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Spy on os.fsync (the real one still runs)."""
    calls: list[int] = []
    real = os.fsync

    def spy(fd: int) -> None:
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    return calls


def test_only_the_complete_record_and_the_owner_are_fsynced(tmp_path: Path,
                                                            fsyncs: list[int]) -> None:
    store = StateStore(tmp_path)
    store.save(_record())  # provisional: outlives a killed process through the page cache
    assert fsyncs == []
    assert store.load("c1", "net1") == _record()
    store.set_owner(PCI, _record(complete=True))
    store.save(_record(complete=True))
    assert len(fsyncs) == 4  # file and directory, twice: DEL after a reboot needs both
    assert store.load("c1", "net1") == _record(complete=True)


def test_a_provisional_write_falls_back_to_fsync_when_blocks_cannot_be_reserved(
        tmp_path: Path, fsyncs: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    def unsupported(fd: int, offset: int, size: int) -> None:
        raise OSError(errno.EOPNOTSUPP, "not supported")

    monkeypatch.setattr(os, "posix_fallocate", unsupported)
    StateStore(tmp_path).save(_record())
    assert len(fsyncs) == 2


def test_a_provisional_write_that_cannot_reserve_its_blocks_fails_105(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = StateStore(tmp_path)
    store.save(_record())

    def full(fd: int, offset: int, size: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)
    with pytest.raises(CniError) as err:
        store.save(_record(netconf="x" * 5000))
    assert err.value.code == 105
    assert store.load("c1", "net1") == _record()  # the previous record stays, no tmp left
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
