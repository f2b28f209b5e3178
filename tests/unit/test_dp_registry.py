"""DeviceRegistry, config reload, event filter and metrics (pure or tmp_path only)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from prometheus_client import generate_latest

from deviceplugin.eventfilter import EventFilter, Rescan
from deviceplugin.metrics import Metrics
from deviceplugin.pool import PoolSpec
from deviceplugin.registry import DeviceRegistry, PoolState
from deviceplugin.scanner import ConfigFile
from sriov.events import DeviceEvent, EventKind
from sriov.types import IfName, Inventory
from tests.unit.test_dp_pool import vf


def _state(n: int) -> dict[str, PoolState]:
    spec = PoolSpec(prefix="intel.com", name="x")
    from deviceplugin.pool import build_devices
    return {spec.full_name: PoolState(spec=spec, devices=build_devices(
        spec, [vf("a", i) for i in range(n)], lambda _: True))}


def test_registry_notifies_only_on_change_and_health_only_path() -> None:
    sizes = iter([2, 2, 2])
    full_calls, health_calls = [], []

    def full():
        full_calls.append(1)
        return _state(next(sizes))

    def health():
        health_calls.append(1)
        return _state(3)

    reg = DeviceRegistry(full, health_scan=health, debounce_s=0.001, safety_interval_s=60)
    seen = []
    got = threading.Event()
    reg.add_listener(lambda snap: (seen.append(snap.generation),
                                   snap.generation == 2 and got.set()))
    first = reg.start()
    try:
        assert first.generation == 1
        reg.trigger(health_only=True)  # health scan: 3 devices -> change
        assert got.wait(5)
        snap = reg.snapshot
        assert snap.generation == 2 and len(snap.pools["intel.com/x"].devices) == 3
        assert len(full_calls) == 1 and len(health_calls) == 1
    finally:
        reg.stop()
    assert seen == [1, 2]


def test_config_file_keeps_previous_pools_on_bad_edit(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"resourceList": [{"resourceName": "a", "selectors": [{}]}]}))
    rejected = []
    cfg = ConfigFile(path, "intel.com", on_invalid=rejected.append)
    cfg.load_initial()
    path.write_text("{not json")
    assert [p.full_name for p in cfg.current().pools] == ["intel.com/a"]
    assert len(rejected) == 1 and "not valid JSON" in str(rejected[0])
    cfg.current()  # the same bad content is reported once
    assert len(rejected) == 1
    path.write_text(json.dumps({"resourceList": [{"resourceName": "b", "selectors": [{}]}]}))
    assert [p.full_name for p in cfg.current().pools] == ["intel.com/b"]
    assert cfg.last_error is None


def test_event_filter_ignores_unrelated_links() -> None:
    v = vf("a", 0)
    from dataclasses import replace
    v = replace(v, netdev=IfName("vf0"))
    from sriov.types import LinkType, PciAddress, PhysicalFunction
    pf = PhysicalFunction(address=PciAddress("0000:3b:00.0"), vendor_id="8086", device_id="1572",
                          driver="i40e", netdevs=(IfName("pfa"),), total_vfs=8, num_vfs=1,
                          numa_node=0, link_type=LinkType.ETHER, mtu=1500,
                          vf_addresses=(v.address,))
    inv = Inventory(pfs=(pf,), vfs=(v,))
    f = EventFilter()
    ev = lambda **kw: DeviceEvent(**{"kind": EventKind.CHANGED, "subsystem": "net", **kw})  # noqa: E731
    assert f.action(ev(ifname=IfName("veth123")), inv) is None
    assert f.action(ev(kind=EventKind.CARRIER, ifname=IfName("pfa")), inv) is Rescan.HEALTH
    assert f.action(ev(kind=EventKind.REMOVED, ifname=IfName("vf0")), inv) is Rescan.FULL
    assert f.action(ev(subsystem="pci", kind=EventKind.ADDED), inv) is Rescan.FULL
    emulated = EventFilter(carrier_needs_refresh=True)
    assert emulated.action(ev(kind=EventKind.CARRIER, ifname=IfName("pfa")), inv) is Rescan.FULL


def test_metrics_use_their_own_registry() -> None:
    m = Metrics()
    m.observe_allocation("intel.com/x", ["a", "b"], 0.001)
    m.observe_allocation("intel.com/x", ["b"], 0.001)
    text = generate_latest(m.registry).decode()
    assert 'sriov_dp_pool_allocated{resource="intel.com/x"} 2.0' in text
    assert 'sriov_dp_allocate_seconds_count{resource="intel.com/x"} 2.0' in text
    from prometheus_client import REGISTRY
    assert REGISTRY.get_sample_value("sriov_dp_pool_allocated", {"resource": "intel.com/x"}) is None


def test_config_watch_ignores_unrelated_entries_of_its_dir(tmp_path: Path) -> None:
    cfg = ConfigFile(tmp_path / "config.json", "intel.com")
    assert cfg.affected_by(["config.json"]) and cfg.affected_by(["..data", "..2024_x"])
    assert not cfg.affected_by(["devinfo", ".tmp-abc", "config.json.swp"])
