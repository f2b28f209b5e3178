"""The real sriov-device-plugin process on a veth-backed emulated SR-IOV host (root).

PF carrier is pulled through the emulation (the PF's wire port goes down, the real
veth loses carrier); the plugin learns it from rtnetlink events.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from deviceplugin.simulator import KubeletSimulator
from sriov.emulate import changes, host
from sriov.emulate.spec import EmulationSpec, EmulationState, pf_netdev
from sriov.netlink import Netlink
from tests.conftest import require_root, unique

pytestmark = pytest.mark.root

NET = "intel.com/emu_net"
DPDK = "intel.com/emu_dpdk"
DEADLINE = 5.0


@dataclass
class Plugin:
    root: Path
    state: EmulationState
    spec: EmulationSpec
    nl: Netlink
    sim: KubeletSimulator
    proc: subprocess.Popen[str]
    plugin_dir: Path


@pytest.fixture
def plugin(tmp_path: Path) -> Iterator[Plugin]:
    require_root()
    tag = unique()
    spec = EmulationSpec(pfs=2, vfs=4, vfio=1, pf_prefix=f"{tag}p", wire_prefix=f"{tag}w",
                         bridge=f"{tag}b")
    root = tmp_path / "emu"
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"resourceList": [
        {"resourceName": "emu_net", "selectors": [{"drivers": ["iavf"]}]},
        {"resourceName": "emu_dpdk", "selectors": [{"drivers": ["vfio-pci"]}]}]}))
    with Netlink() as nl:
        state = host.up(root, spec, nl)
        sim = KubeletSimulator(tmp_path / "d", tmp_path / "p.sock")
        sim.start()
        proc = subprocess.Popen(
            [sys.executable, "-m", "deviceplugin.cli", "--config", str(config),
             "--plugin-dir", str(tmp_path / "d"), "--sysfs-root", str(root),
             "--devinfo-dir", str(tmp_path / "devinfo")], stderr=subprocess.PIPE, text=True)
        try:
            yield Plugin(root, state, spec, nl, sim, proc, tmp_path / "d")
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.communicate(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.communicate()
            sim.stop()
            host.down(root, nl)
    out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert tag not in out


def test_registers_lists_numa_and_follows_pf_carrier(plugin: Plugin) -> None:
    sim = plugin.sim
    assert sim.wait_until(lambda s: s.capacity(NET) == 6 and s.capacity(DPDK) == 2, 15), \
        (sim.resources(), sim.capacity(NET), sim.capacity(DPDK))
    numa = {tuple(n.ID for n in d.topology.nodes) for d in sim.devices(NET).values()}
    assert numa == {(0,), (1,)}
    pf0 = pf_netdev(plugin.spec, 0)
    changes.set_pf_carrier(plugin.root, pf0, False, plugin.nl)
    assert sim.wait_until(lambda s: len(s.allocatable(NET)) == 3, DEADLINE), \
        sorted((i, d.health) for i, d in sim.devices(NET).items())
    changes.set_pf_carrier(plugin.root, pf0, True, plugin.nl)
    assert sim.wait_until(lambda s: len(s.allocatable(NET)) == 6, DEADLINE)


def test_lowering_numvfs_and_allocating_vfio(plugin: Plugin) -> None:
    sim = plugin.sim
    assert sim.wait_until(lambda s: s.capacity(NET) == 6 and s.capacity(DPDK) == 2, 15)
    resp = sim.allocate("default", "dpdk-pod", "c0", DPDK, 1).container_responses[0]
    paths = [d.host_path for d in resp.devices]
    assert paths[0] == "/dev/vfio/vfio" and paths[1].startswith("/dev/vfio/")
    assert len(resp.envs["PCIDEVICE_INTEL_COM_EMU_DPDK"].split(",")) == 1
    pf1 = pf_netdev(plugin.spec, 1)
    changes.set_num_vfs(plugin.root, pf1, 0, plugin.nl)  # kernel: non-zero -> non-zero is EBUSY
    assert sim.wait_until(lambda s: s.capacity(NET) + s.capacity(DPDK) == 4, DEADLINE), \
        (sim.capacity(NET), sim.capacity(DPDK))
    changes.set_num_vfs(plugin.root, pf1, 2, plugin.nl)
    assert sim.wait_until(lambda s: s.capacity(NET) + s.capacity(DPDK) == 6, DEADLINE), \
        (sim.capacity(NET), sim.capacity(DPDK))


def test_sigterm_removes_sockets(plugin: Plugin) -> None:
    assert plugin.sim.wait_until(lambda s: s.capacity(NET) == 6, 15)
    plugin.proc.send_signal(signal.SIGTERM)
    _, stderr = plugin.proc.communicate(timeout=15)
    assert plugin.proc.returncode == 0, stderr
    assert sorted(p.name for p in plugin.plugin_dir.iterdir()) == ["kubelet.sock"]
