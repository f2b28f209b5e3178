"""Device classes the guest kernel can really show (Debian 6.1: uio_pci_generic; its config
has neither CONFIG_VDPA nor CONFIG_VFIO_NOIOMMU), discovered by sriov.sysfs and allocated by
the device plugin's Allocate, against real sysfs and a real devtmpfs /dev."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.vm import hw
from tests.vm.conftest import EnableVfs, colleague_module

DEV = Path("/dev")


def allocate(config: dict, pool: str, device_id: str):  # type: ignore[no-untyped-def]
    """Select on the real host and answer Allocate as the device plugin does."""
    pools = colleague_module("sriov.pools")
    sysfs = colleague_module("sriov.sysfs")
    scanner = colleague_module("deviceplugin.scanner")
    poolmod = colleague_module("deviceplugin.pool")
    allocation = colleague_module("deviceplugin.allocation")
    cfg = pools.PoolConfig.parse(config)
    selection = pools.select(cfg, sysfs.SysfsReader(Path("/")).inventory())
    spec = scanner.pool_spec(cfg.pool(pool))
    devices = poolmod.build_devices(spec, selection.pools[pool], lambda _: True,
                                    scanner.selector_options(cfg, selection))
    chosen = [d for d in devices if d.id == device_id]
    assert chosen, f"{device_id} not in {pool}: {selection.reasons.get(device_id)}"
    return allocation.allocate_container(spec, chosen, use_cdi=False, dev_root=DEV)


def test_uio_pci_generic_vf_gets_its_real_uio_node(sriov_pf: hw.RealPf,
                                                   enable_vfs: EnableVfs) -> None:
    if not Path("/sys/bus/pci/drivers/uio_pci_generic").is_dir():
        pytest.skip("uio_pci_generic is not loaded in this guest (hack/vm/guest-init.sh)")
    sysfs = colleague_module("sriov.sysfs")
    vf = enable_vfs(sriov_pf, 2)[1]
    hw.bind_driver(vf, "uio_pci_generic")
    try:
        found = sysfs.SysfsReader(Path("/")).vf(vf.address)
        assert found.driver == "uio_pci_generic" and found.netdev is None
        assert found.uio_device is not None and found.uio_device.startswith("uio")
        node = DEV / found.uio_device
        assert node.is_char_device(), f"{node} is not a char device"
        alloc = allocate({"resourceList": [
            {"resourceName": "uio", "selectors": [{"drivers": ["uio_pci_generic"]}]}]},
            "intel.com/uio", vf.address)
        assert [(n.container_path, n.host_path) for n in alloc.devices] == [
            (str(node), str(node))]
        info = json.loads(alloc.envs["PCIDEVICE_INTEL_COM_UIO_INFO"])
        assert info[vf.address]["uio"] == {"mount": str(node)}
    finally:
        hw.bind_driver(vf, None)
    hw.wait_for(lambda: vf.driver == "igbvf", what=f"{vf.address} back on igbvf")


def test_pf_without_vfs_is_a_nic_device_unless_it_has_the_default_route(
        sriov_pfs: tuple[hw.RealPf, ...]) -> None:
    sysfs = colleague_module("sriov.sysfs")
    pf = sriov_pfs[-1]
    assert hw.num_vfs(pf) == 0 and pf.netdev is not None
    nic = next(d for d in sysfs.SysfsReader(Path("/")).inventory().others
               if d.address == pf.address)
    assert (str(nic.device_class), nic.driver, nic.netdev, nic.index) == (
        "nic", "igb", pf.netdev, -1)
    config = {"resourceList": [{"resourceName": "whole_nic",
                                "selectors": [{"vendors": ["8086"], "devices": ["10c9"]}]}]}
    alloc = allocate(config, "intel.com/whole_nic", pf.address)
    assert alloc.devices == ()
    assert json.loads(alloc.envs["PCIDEVICE_INTEL_COM_WHOLE_NIC_INFO"])[pf.address] == {
        "generic": {"deviceID": pf.address}}

    was_up = Path("/sys/class/net", pf.netdev, "flags").read_text().strip()
    subprocess.run(["ip", "link", "set", pf.netdev, "up"], check=True)
    subprocess.run(["ip", "route", "add", "default", "dev", pf.netdev], check=True)
    try:
        pools = colleague_module("sriov.pools")
        selection = pools.select(pools.PoolConfig.parse(config),
                                 sysfs.SysfsReader(Path("/")).inventory())
        assert pf.address not in [d.id for d in selection.pools["intel.com/whole_nic"]]
        assert "default route" in selection.reasons[pf.address]
    finally:
        subprocess.run(["ip", "route", "del", "default", "dev", pf.netdev], check=False)
        if not int(was_up, 16) & 1:
            subprocess.run(["ip", "link", "set", pf.netdev, "down"], check=False)
