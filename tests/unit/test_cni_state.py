"""StateStore: permissions, atomic records, per-VF lock, ownership (sriov-cni #219)."""

from __future__ import annotations

import dataclasses
import json
import os
import stat
import threading
import time
from pathlib import Path

import pytest

from cni.record import AttachmentMode, AttachmentRecord, DamagedRecord, VfOwner, VfPart
from cni.state import StateStore, boottime_ns
from sriov.errors import InvalidInputError, VfBusyError

PCI = "0000:3b:02.1"


def _record(cid: str = "c1", ifname: str = "net1", **kw: object) -> AttachmentRecord:
    base: dict[str, object] = dict(mode=AttachmentMode.DPDK, container_id=cid, ifname=ifname,
                                   network="st-net", netns="/run/netns/x", device_id=PCI,
                                   vf=VfPart(pf="st-pf0", vf_index=1))
    base.update(kw)
    return AttachmentRecord(**base)  # type: ignore[arg-type]


def test_records_round_trip_with_private_permissions(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state")
    store.save(_record())
    assert store.load("c1", "net1") == _record()
    record = tmp_path / "state" / "c1-net1"
    assert json.loads(record.read_bytes())["version"] == 2
    assert stat.S_IMODE(record.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "state").stat().st_mode) == 0o700
    assert [r.key for r in store.list_attachments()[0]] == [("c1", "net1")]
    assert not [p for p in (tmp_path / "state").iterdir() if p.name.startswith(".")]  # no tmp left
    store.delete("c1", "net1")
    store.delete("c1", "net1")  # idempotent
    assert store.load("c1", "net1") is None and store.list_attachments() == ([], [])


@pytest.mark.parametrize(
    ("cid", "ifname"), [("../x", "net1"), ("c1", "../../x"), ("c1/..", "n"), ("", "n")]
)
def test_keys_cannot_escape_the_state_dir(tmp_path: Path, cid: str, ifname: str) -> None:
    with pytest.raises(InvalidInputError):
        StateStore(tmp_path).save(_record(cid, ifname))


@pytest.mark.parametrize(
    "body",
    [b'{"mode": "vf", "deviceID": "0000:3b:02.1", "pf": "p0", "vfI', b"",
     b'{"mode": "st-unknown", "containerID": "c1", "ifname": "net1"}',
     b'{"mode": "vf", "containerID": "c1", "ifname": "net1", "deviceID": "0000:3b:02.1",'
     b' "vfIndex": 1}',
     b'{"version": 2, "mode": "dpdk", "containerID": "c1", "ifname": "net1", "vf": null}',
     b'{"version": 7}', b"[]"],
    ids=["truncated", "empty", "unknown-mode", "no-pf", "v2-no-vf", "future-version", "not-object"],
)
def test_damaged_record_is_reported_not_ignored(tmp_path: Path, body: bytes) -> None:
    # was: a truncated record read as "no record" (DEL rc 0, VF left in the pod); an unknown
    # mode gave 999 and a record without pf 105 on every DEL and GC
    store = StateStore(tmp_path)
    (tmp_path / "c1-net1").write_bytes(body)
    with pytest.raises(DamagedRecord):
        store.load("c1", "net1")
    records, damaged = store.list_attachments()
    assert records == [] and [p.name for p, _ in damaged] == ["c1-net1"]
    moved = store.quarantine(tmp_path / "c1-net1", "test")
    assert moved is not None and moved.read_bytes() == body and moved.parent.name == "quarantine"
    assert store.load("c1", "net1") is None


def test_version_1_records_are_read(tmp_path: Path) -> None:
    """The flat records of earlier releases (plugin + mode keys in one dict) still load."""
    vf_v1 = {"mode": "vf", "deviceID": PCI, "pf": "st-pf0", "vfIndex": 1, "netns": "/run/netns/a",
             "podIfname": "net1", "pfState": None, "released": False, "complete": True,
             "hostNetdev": {"name": "st-vf1", "mac": "02:00:00:00:00:01", "mtu": 1500,
                            "altnames": [], "up": True, "permMac": None},
             "network": "st-net", "netconf": "{}", "containerID": "c1", "ifname": "net1",
             "result": {"cniVersion": "1.1.0", "interfaces": [{"name": "net1"}]}}
    fb_v1 = {"mode": "fallback", "network": "st-net", "netns": "/run/netns/b",
             "tempIfname": "sfb01020304", "provisional": True, "vlanParent": "eth0.5",
             "containerID": "c2", "ifname": "net1"}
    (tmp_path / "c1-net1").write_text(json.dumps(vf_v1))
    (tmp_path / "c2-net1").write_text(json.dumps(fb_v1))
    store = StateStore(tmp_path)
    vf = store.load("c1", "net1")
    assert vf is not None and vf.mode is AttachmentMode.VF and vf.complete and vf.netns_id is None
    assert vf.vf is not None and vf.vf.netdev is not None and vf.vf.netdev.name == "st-vf1"
    assert vf.result is not None and vf.result.interfaces[0].name == "net1"
    fb = store.load("c2", "net1")
    assert fb is not None and not fb.complete and fb.fallback is not None
    assert (fb.fallback.temp_ifname, fb.fallback.vlan_parent) == ("sfb01020304", "eth0.5")
    store.save(vf)  # rewritten as version 2, same content
    assert store.load("c1", "net1") == vf


def test_tmp_leftovers_of_dead_writers_are_swept(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.save(_record())
    dead = tmp_path / ".c1-net1.tmp999999999"
    dead.write_text("{")
    live = tmp_path / f".c2-net1.tmp{os.getppid()}"  # a live writer between open and rename
    live.write_text("{")
    assert store.sweep_tmp() == [dead]
    assert live.exists() and store.load("c1", "net1") == _record()


def test_attachment_lock_survives_unlink_by_the_holder(tmp_path: Path) -> None:
    """DEL unlinks the lock file while holding it; a waiter must not lock a stale inode."""
    store = StateStore(tmp_path)
    inside: list[int] = []
    overlap: list[bool] = []

    def worker() -> None:
        with store.attachment_lock("c1", "net1"):
            inside.append(1)
            overlap.append(len(inside) > 1)
            time.sleep(0.01)  # widen the window a race would need; not used for synchronisation
            inside.pop()
            store.drop_attachment_lock("c1", "net1")

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert overlap == [False] * 6


def test_tombstone_is_per_boot_and_pruned(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    assert store.tombstone("c1", "net1") is None
    store.write_tombstone("c1", "net1")
    deleted = store.tombstone("c1", "net1")
    assert deleted is not None and deleted <= boottime_ns()
    other_boot = tmp_path / "tombstone" / "c2-net1"
    other_boot.write_text(json.dumps({"boot": "another-boot", "deletedAt": 1}))
    assert store.tombstone("c2", "net1") is None
    store.prune_tombstones()
    assert not other_boot.exists() and store.tombstone("c1", "net1") == deleted
    store.prune_tombstones(ttl=0)
    assert store.tombstone("c1", "net1") is None


def test_del_prunes_expired_tombstones_at_most_once_a_minute(tmp_path: Path) -> None:
    """Kubelet never sends CNI GC: DEL itself keeps the tombstones bounded."""
    store = StateStore(tmp_path)
    old = tmp_path / "tombstone" / "c9-net1"
    store.write_tombstone("c1", "net1")
    old.write_text(json.dumps({"boot": "another-boot", "deletedAt": 1}))
    store.prune_tombstones_if_due()
    assert not old.exists() and store.tombstone("c1", "net1") is not None
    old.write_text(json.dumps({"boot": "another-boot", "deletedAt": 1}))
    store.prune_tombstones_if_due()  # pruned a moment ago: not again yet
    assert old.exists()


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
    store.set_owner(PCI, _record("old", netns="/run/netns/old"))
    assert store.clear_owner(PCI, "old", "net1")
    store.set_owner(PCI, _record("new", netns="/run/netns/new"))
    assert not store.clear_owner(PCI, "old", "net1")  # the late DEL of the old pod
    assert store.owner(PCI) == VfOwner("new", "net1", "/run/netns/new")
    assert store.owner_record(PCI) == _record("new", netns="/run/netns/new")
    assert not store.clear_owner("0000:3b:02.2", "x", "net1")


def test_nic_record_round_trip_and_damage() -> None:
    from cni.record import AttachmentMode, AttachmentRecord, DamagedRecord, NicPart
    from cni.vf_netdev import NetdevSnapshot

    snap = NetdevSnapshot(name="eth1", mac="52:54:00:5a:00:03", mtu=1500, altnames=("ens3",),
                          up=True, perm_mac="52:54:00:5a:00:03", alias="uplink")
    record = AttachmentRecord(mode=AttachmentMode.NIC, container_id="c1", ifname="net1",
                              network="n", netns="/run/netns/p", device_id="0000:03:00.0",
                              nic=NicPart(netdev=snap))
    assert AttachmentRecord.from_json(record.to_json()) == record
    raw = record.to_json()
    raw["nic"] = {"hostNetdev": None}
    with pytest.raises(DamagedRecord, match="NIC part has no 'hostNetdev'"):
        AttachmentRecord.from_json(raw)
    raw = record.to_json()
    raw["deviceID"] = None
    with pytest.raises(DamagedRecord, match="nic record lacks its deviceID"):
        AttachmentRecord.from_json(raw)


@pytest.mark.parametrize("mode", ["vf", "fallback"])
def test_del_pending_is_a_record_field_of_every_mode(tmp_path: Path, mode: str) -> None:
    """An answered DEL whose tail has not run yet (docs/cni.md "Deferred DEL"): the mark is
    saved, read back and listed for any mode, and absent from a record that is not pending."""
    from cni.record import FallbackPart

    store = StateStore(tmp_path / "state")
    record = (_record(complete=True) if mode == "vf" else
              _record(mode=AttachmentMode.FALLBACK, device_id=None, vf=None, complete=True,
                      fallback=FallbackPart(link_type="macvlan", master="st-m0")))
    assert "delPending" not in record.to_json() and not record.del_pending
    store.save(dataclasses.replace(record, del_pending=True))
    loaded = store.load("c1", "net1")
    assert loaded is not None and loaded.del_pending
    assert json.loads((tmp_path / "state" / "c1-net1").read_bytes())["delPending"] is True
    assert [r.del_pending for r in store.list_attachments()[0]] == [True]

