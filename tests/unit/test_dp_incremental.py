"""The carrier-flip fast path: only the flipped PF's VFs change, and the wire bytes match."""

from __future__ import annotations

import json
from pathlib import Path

from deviceplugin.api.v1beta1 import api_pb2 as pb
from deviceplugin.devicelist import DeviceListEncoder, encode_device
from deviceplugin.fingerprint import SysfsFingerprint
from deviceplugin.pool import Health
from deviceplugin.scanner import ConfigFile, HostScanner
from sriov.types import IfName
from tests.unit.test_dp_support import NETDEV_CONFIG, PF0, build_tree


def _scanner(tmp_path: Path, carrier: dict[str, bool]) -> tuple[HostScanner, list[int]]:
    _, scanner, reads = _scanner_and_tree(tmp_path, carrier)
    return scanner, reads


def _scanner_and_tree(tmp_path: Path, carrier: dict[str, bool]):
    tree = build_tree(tmp_path / "host")
    (tmp_path / "c.json").write_text(json.dumps(NETDEV_CONFIG))
    config = ConfigFile(tmp_path / "c.json", "intel.com")
    config.load_initial()
    from sriov.sysfs import SysfsReader
    inventory_reads: list[int] = []
    reader = SysfsReader(tmp_path / "host")

    def inventory():
        inventory_reads.append(1)
        return reader.inventory()

    scanner = HostScanner(config, inventory, lambda name: carrier.get(name),
                          SysfsFingerprint(tmp_path / "host"), full_every=100)
    return tree, scanner, inventory_reads


def test_health_only_rebuilds_just_the_flipped_pf(tmp_path: Path) -> None:
    carrier = {"enp59s0f0": True, "enp94s0f0": True}
    scanner, reads = _scanner(tmp_path, carrier)
    first = scanner()["intel.com/sriov_net"]
    assert scanner.health_only()["intel.com/sriov_net"] is first  # nothing changed
    carrier["enp59s0f0"] = False
    second = scanner.health_only()["intel.com/sriov_net"]
    assert len(reads) == 1  # no inventory re-read on the health path
    flipped = [d for d in second.devices if d.vf.pf_netdev == IfName("enp59s0f0")]
    others = [d for d in second.devices if d.vf.pf_netdev != IfName("enp59s0f0")]
    assert {d.health for d in flipped} == {Health.UNHEALTHY} and len(flipped) == 4
    assert all(any(o is d for d in first.devices) for o in others)  # untouched objects
    assert second.by_id()[flipped[0].id].health is Health.UNHEALTHY
    assert [d.id for d in second.devices] == [d.id for d in first.devices]


def test_encoder_bytes_equal_a_full_serialization_and_track_changes(tmp_path: Path) -> None:
    carrier = {"enp59s0f0": True, "enp94s0f0": True}
    scanner, _ = _scanner(tmp_path, carrier)
    scanner()
    encoder = DeviceListEncoder()
    for up in (True, False, True):
        carrier["enp94s0f0"] = up
        pool = scanner.health_only()["intel.com/sriov_net"]
        wire = encoder.encode(pool)
        assert encoder.encode(pool) is wire  # same state: cached bytes
        parsed = pb.ListAndWatchResponse.FromString(wire)
        assert [(d.ID, d.health) for d in parsed.devices] == [
            (d.id, str(d.health)) for d in pool.devices]
        full = pb.ListAndWatchResponse.FromString(
            b"".join(encode_device(d) for d in pool.devices))
        assert parsed == full
        numa = {d.ID: [n.ID for n in d.topology.nodes] for d in parsed.devices}
        assert sorted({tuple(v) for v in numa.values()}) == [(0,), (1,)]


def test_safety_timer_rescans_fully_only_when_the_structure_changed(tmp_path: Path) -> None:
    carrier = {"enp59s0f0": True, "enp94s0f0": True}
    tree, scanner, reads = _scanner_and_tree(tmp_path, carrier)
    first = scanner()["intel.com/sriov_net"]
    assert scanner.safety()["intel.com/sriov_net"] is first and len(reads) == 1
    carrier["enp94s0f0"] = False  # a missed carrier event: the health pass still sees it
    assert len(scanner.safety()["intel.com/sriov_net"].devices) == 8 and len(reads) == 1
    tree.set_num_vfs(PF0, 2)  # a missed sriov_numvfs change
    assert len(scanner.safety()["intel.com/sriov_net"].devices) == 6 and len(reads) == 2
    vf = tree.set_num_vfs(PF0, 2)[1]
    tree.bind_vf_driver(vf, "vfio-pci")  # a missed rebind
    assert len(scanner.safety()["intel.com/sriov_net"].devices) == 5 and len(reads) == 3
    assert len(scanner.safety()["intel.com/sriov_net"].devices) == 5 and len(reads) == 3
