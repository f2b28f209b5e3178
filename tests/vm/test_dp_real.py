"""The real sriov-device-plugin process over the real igb PF and its VFs (QEMU testbed only).

The kubelet simulator registers the plugin and consumes ListAndWatch; pools select igbvf VFs
(``igb_net``) and a vfio-pci-bound VF (``igb_dpdk``). Asserts what kubelet would see:
capacity, health following the PF's real carrier, Allocate's env and ``/dev/vfio`` device
specs, a VF rebound to vfio-pci moving pools, and a clean SIGTERM.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.vm import hw
from tests.vm.conftest import EnableVfs, colleague_module, link_with_carrier, set_link

NET = "intel.com/igb_net"
DPDK = "intel.com/igb_dpdk"
START_TIMEOUT = 90.0
"""The plugin imports grpc under TCG (slow): generous, but only a deadline, never a sleep."""
CHANGE_TIMEOUT = 30.0


@pytest.fixture
def pf_and_vfs(sriov_pf: hw.RealPf, enable_vfs: EnableVfs,
               ) -> tuple[hw.RealPf, tuple[hw.RealVf, ...]]:
    if not Path("/sys/bus/pci/drivers/vfio-pci").exists():
        pytest.skip("vfio-pci is not available in this testbed kernel")
    vfs = enable_vfs(sriov_pf, 4)
    hw.bind_driver(vfs[3], "vfio-pci")
    assert sriov_pf.netdev is not None
    link_with_carrier(sriov_pf.netdev)
    return sriov_pf, vfs


@pytest.fixture
def sim_and_plugin(tmp_path: Path) -> Iterator[tuple[Any, subprocess.Popen[str]]]:
    simulator = colleague_module("deviceplugin.simulator")
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"resourceList": [
        {"resourceName": "igb_net", "selectors": [{"drivers": ["igbvf"]}]},
        {"resourceName": "igb_dpdk", "selectors": [{"drivers": ["vfio-pci"]}]}]}))
    sim = simulator.KubeletSimulator(tmp_path / "d", tmp_path / "p.sock")
    sim.start()
    proc = subprocess.Popen(
        [sys.executable, "-m", "deviceplugin.cli", "--config", str(config),
         "--plugin-dir", str(tmp_path / "d"), "--devinfo-dir", str(tmp_path / "devinfo")],
        stderr=subprocess.PIPE, text=True)
    try:
        yield sim, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
        sim.stop()


def test_list_and_watch_allocate_and_health_over_real_vfs(
        pf_and_vfs: tuple[hw.RealPf, tuple[hw.RealVf, ...]],
        sim_and_plugin: tuple[Any, subprocess.Popen[str]], tmp_path: Path) -> None:
    pf, vfs = pf_and_vfs
    sim, proc = sim_and_plugin
    net_ids, dpdk_id = {vf.address for vf in vfs[:3]}, vfs[3].address
    assert sim.wait_until(lambda s: set(s.devices(NET)) == net_ids
                          and set(s.devices(DPDK)) == {dpdk_id}, START_TIMEOUT), \
        (sim.resources(), proc.poll())
    assert sim.wait_until(lambda s: len(s.allocatable(NET)) == 3, CHANGE_TIMEOUT)

    resp = sim.allocate("default", "dpdk-pod", "c0", DPDK, 1).container_responses[0]
    assert resp.envs["PCIDEVICE_INTEL_COM_IGB_DPDK"] == dpdk_id
    assert [d.host_path for d in resp.devices] == ["/dev/vfio/vfio",
                                                   f"/dev/vfio/{vfs[3].iommu_group}"]
    info = json.loads(resp.envs["PCIDEVICE_INTEL_COM_IGB_DPDK_INFO"])
    assert f"/dev/vfio/{vfs[3].iommu_group}" in info[dpdk_id]["vfio"].values(), info
    resp = sim.allocate("default", "net-pod", "c0", NET, 2).container_responses[0]
    allocated = resp.envs["PCIDEVICE_INTEL_COM_IGB_NET"].split(",")
    assert len(allocated) == 2 and set(allocated) <= net_ids and not resp.devices
    devinfo = sorted(p.name for p in (tmp_path / "devinfo").iterdir())
    assert f"intel.com-igb_net-{allocated[0]}-device.json" in devinfo

    assert pf.netdev is not None
    set_link(pf.netdev, up=False)  # the PF loses carrier: every VF becomes unhealthy
    assert sim.wait_until(lambda s: not s.allocatable(NET) and not s.allocatable(DPDK),
                          CHANGE_TIMEOUT), \
        sorted((i, d.health) for i, d in sim.devices(NET).items())
    link_with_carrier(pf.netdev)
    assert sim.wait_until(lambda s: len(s.allocatable(NET)) == 3, CHANGE_TIMEOUT)

    hw.bind_driver(vfs[2], "vfio-pci")  # a rebind moves the VF to the pool selecting vfio-pci
    assert sim.wait_until(lambda s: set(s.devices(DPDK)) == {dpdk_id, vfs[2].address}
                          and vfs[2].address not in s.devices(NET), CHANGE_TIMEOUT), \
        (sorted(sim.devices(NET)), sorted(sim.devices(DPDK)))

    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["kubelet.sock"]
