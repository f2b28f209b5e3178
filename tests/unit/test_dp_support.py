"""Shared builders for the device-plugin tests: an emulated sysfs tree + a running plugin."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from deviceplugin.cdi import CdiSpecWriter
from deviceplugin.dirwatch import Mask, Watcher
from deviceplugin.fingerprint import SysfsFingerprint
from deviceplugin.lifecycle import PluginManager
from deviceplugin.metrics import Metrics
from deviceplugin.pool import Policy
from deviceplugin.registry import DeviceRegistry
from deviceplugin.retry import DEFAULT_BACKOFF, Backoff
from deviceplugin.scanner import ConfigFile, HostScanner, SysfsCarrier, registry_for
from deviceplugin.servicer import ServiceOptions
from deviceplugin.simulator import KubeletSimulator
from deviceplugin.sysfswatch import SysfsWatch
from sriov.emulate.tree import PfSpec, SysfsTreeBuilder
from sriov.sysfs import SysfsReader

PF0 = "0000:3b:00.0"
PF1 = "0000:5e:00.0"
NETDEV_CONFIG = {"resourceList": [
    {"resourceName": "sriov_net", "selectors": [{"drivers": ["iavf"]}]},
]}


def build_tree(root: Path, vfs: int = 4,
               vfio: dict[int, str | None] | None = None) -> SysfsTreeBuilder:
    tree = SysfsTreeBuilder(root)
    tree.add_pf(PfSpec(address=PF0, ifname="enp59s0f0", num_vfs=vfs, numa_node=0,
                       vf_ifnames=tuple(f"enp59s0v{i}" for i in range(vfs)),
                       vf_drivers=vfio or {}))
    tree.add_pf(PfSpec(address=PF1, ifname="enp94s0f0", num_vfs=vfs, numa_node=1,
                       vf_ifnames=tuple(f"enp94s0v{i}" for i in range(vfs))))
    return tree


def write_config(path: Path, obj: object) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj))
    tmp.replace(path)


def eventually(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll ``predicate`` until it holds or the deadline passes (for state without a wakeup)."""
    deadline = time.monotonic() + timeout
    tick = threading.Event()
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        tick.wait(0.01)
    return True


@dataclass
class RunningPlugin:
    sim: KubeletSimulator
    registry: DeviceRegistry
    manager: PluginManager
    metrics: Metrics
    plugin_dir: Path
    devinfo_dir: Path
    config_rejected: threading.Event
    cdi_dir: Path
    plugins_registry: Path | None


@contextmanager
def running_plugin(tmp_path: Path, config: object, *, use_cdi: bool = False,
                   policy: Policy = Policy.SPREAD, plugin_watcher: bool = False,
                   backoff: Backoff = DEFAULT_BACKOFF, start_kubelet: bool = True,
                   refuse_registrations: int = 0) -> Iterator[RunningPlugin]:
    """The same wiring as deviceplugin.cli.run, in-process, against a simulator.

    ``start_kubelet=False``: the simulator is created but not started (the test
    starts it late with ``sim.start()``).
    """
    plugin_dir = tmp_path / "d"
    devinfo = tmp_path / "devinfo"
    cfg_dir = tmp_path / "etc"
    cfg_dir.mkdir(exist_ok=True)
    if not (cfg_dir / "config.json").exists():
        write_config(cfg_dir / "config.json", config)
    metrics = Metrics()
    rejected = threading.Event()

    def on_invalid(error: Exception) -> None:
        metrics.config_reload_failures.inc()
        rejected.set()

    cfg = ConfigFile(cfg_dir / "config.json", "intel.com", on_invalid=on_invalid)
    cfg.load_initial()
    scanner = HostScanner(cfg, SysfsReader(tmp_path / "host").inventory,
                          SysfsCarrier(tmp_path / "host"), SysfsFingerprint(tmp_path / "host"))
    registry = registry_for(scanner, safety_interval_s=30)
    registry_dir = tmp_path / "pr" if plugin_watcher else None  # short: unix path limit
    dev_root = tmp_path / "host" / "dev"  # as deviceplugin.cli: <sysfs-root>/dev
    manager = PluginManager(plugin_dir, registry, ServiceOptions(
        policy=policy, use_cdi=use_cdi, devinfo_dir=devinfo, dev_root=dev_root), metrics,
        backoff=backoff, plugins_registry=registry_dir)
    cdi = CdiSpecWriter(tmp_path / "cdi", dev_root)
    if use_cdi:
        registry.add_listener(lambda snap: cdi.update(snap.pools))
    sysfs_watch = SysfsWatch(tmp_path / "host", registry.trigger)
    cfg_watch = Watcher(lambda ev: cfg.affected_by(e.name for e in ev) and registry.trigger(),
                        name="test-cfgwatch")
    registry.add_listener(lambda snap: sysfs_watch.refresh(scanner.last_inventory))
    sim = KubeletSimulator(plugin_dir, tmp_path / "p.sock", plugins_registry=registry_dir,
                           refuse_registrations=refuse_registrations)
    if start_kubelet:
        sim.start()
    registry.start()
    sysfs_watch.start(scanner.last_inventory)
    cfg_watch.watch(cfg_dir, Mask.dir_changes() | Mask.MODIFY)
    cfg_watch.start()
    manager.start()
    try:
        yield RunningPlugin(sim, registry, manager, metrics, plugin_dir, devinfo, rejected,
                            tmp_path / "cdi", registry_dir)
    finally:
        manager.stop()
        cdi.remove_all()
        cfg_watch.stop()
        sysfs_watch.stop()
        registry.stop()
        sim.stop()
        assert threading.active_count() < 50
