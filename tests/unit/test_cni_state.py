"""StateStore: permissions, atomic records, per-VF lock, ownership (sriov-cni #219)."""

from __future__ import annotations

import stat
import threading
import time
from pathlib import Path

import pytest

from cni.state import StateStore
from sriov.errors import InvalidInputError, VfBusyError

PCI = "0000:3b:02.1"


def test_records_round_trip_with_private_permissions(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state")
    store.save("c1", "net1", {"mode": "vf", "deviceID": PCI})
    assert store.load("c1", "net1") == {
        "mode": "vf",
        "deviceID": PCI,
        "containerID": "c1",
        "ifname": "net1",
    }
    record = tmp_path / "state" / "c1-net1"
    assert stat.S_IMODE(record.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "state").stat().st_mode) == 0o700
    assert [(c, i) for c, i, _ in store.list_attachments()] == [("c1", "net1")]
    assert not [p for p in (tmp_path / "state").iterdir() if p.name.startswith(".")]  # no tmp left
    store.delete("c1", "net1")
    store.delete("c1", "net1")  # idempotent
    assert store.load("c1", "net1") is None and store.list_attachments() == []


@pytest.mark.parametrize(
    ("cid", "ifname"), [("../x", "net1"), ("c1", "../../x"), ("c1/..", "n"), ("", "n")]
)
def test_keys_cannot_escape_the_state_dir(tmp_path: Path, cid: str, ifname: str) -> None:
    with pytest.raises(InvalidInputError):
        StateStore(tmp_path).save(cid, ifname, {})


def test_corrupt_record_is_ignored(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    (tmp_path / "c1-net1").write_text("{broken")
    assert store.load("c1", "net1") is None
    assert store.list_attachments() == []


def test_vf_lock_times_out_with_vf_busy(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    held, release = threading.Event(), threading.Event()

    def holder() -> None:
        with store.vf_lock(PCI):
            held.set()
            release.wait(10)

    t = threading.Thread(target=holder)
    t.start()
    try:
        assert held.wait(10)
        with pytest.raises(VfBusyError), store.vf_lock(PCI, timeout=0.1):
            pass
    finally:
        release.set()
        t.join()
    with store.vf_lock(PCI, timeout=1):
        pass
    assert (tmp_path / "pci" / "vf_lock" / f"{PCI}.lock").exists()


def test_vf_lock_serialises(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    inside: list[int] = []
    overlap: list[bool] = []

    def worker() -> None:
        with store.vf_lock(PCI):
            inside.append(1)
            overlap.append(len(inside) > 1)
            time.sleep(0.01)  # widen the window a race would need; not used for synchronisation
            inside.pop()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert overlap == [False] * 4


def test_rejects_bad_pci_in_lock_and_owner(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    with pytest.raises(InvalidInputError), store.vf_lock("../../etc"):
        pass
    with pytest.raises(InvalidInputError):
        store.owner("0000:3b:02.1/../../x")


def test_late_del_does_not_clear_new_owner(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.set_owner(PCI, "old", "net1", "/run/netns/old")
    assert store.clear_owner(PCI, "old", "net1")
    store.set_owner(PCI, "new", "net1", "/run/netns/new")
    assert not store.clear_owner(PCI, "old", "net1")  # the late DEL of the old pod
    assert store.owner(PCI) == {"containerID": "new", "ifname": "net1", "netns": "/run/netns/new"}
    assert not store.clear_owner("0000:3b:02.2", "x", "net1")
