"""The one seam between device classes and CNI modes (cni/device_modes.py)."""

from __future__ import annotations

import dataclasses

import pytest

from cni import device_modes
from sriov.errors import DeviceNotFoundError
from sriov.types import DeviceClass, IfName, LinkType, PciAddress, VirtualFunction

VF = VirtualFunction(address=PciAddress("0000:3b:02.0"), index=0,
                     pf_address=PciAddress("0000:3b:00.0"), pf_netdev=IfName("ens1"),
                     vendor_id="8086", device_id="10ca", driver="igbvf",
                     netdev=IfName("ens1v0"), iommu_group=7, numa_node=None, is_rdma=False,
                     link_type=LinkType.ETHER)
NIC = dataclasses.replace(VF, address=PciAddress("0000:07:00.0"), index=-1,
                          pf_address=PciAddress("0000:07:00.0"), pf_netdev=None,
                          vendor_id="1af4", device_id="1041", driver="virtio-pci",
                          netdev=IfName("eth1"), device_class=DeviceClass.NIC)


@pytest.mark.parametrize(("device", "mode"), [
    (VF, "vf"),
    (dataclasses.replace(VF, netdev=None), "vf"),  # netdev in a pod: the VF mode decides
    (dataclasses.replace(VF, driver="vfio-pci", netdev=None), "dpdk"),
    (dataclasses.replace(VF, driver="uio_pci_generic", netdev=None), "dpdk"),  # as sriov-cni
    (dataclasses.replace(VF, driver="igb_uio", netdev=None), "dpdk"),
    (NIC, "nic"),
    (dataclasses.replace(NIC, netdev=None), "nic"),  # in a pod: the NIC mode tells busy/stale
])
def test_each_class_and_driver_picks_its_mode(device: VirtualFunction, mode: str) -> None:
    assert device_modes.mode_of(device) == mode


@pytest.mark.parametrize(("device", "says"), [
    (dataclasses.replace(VF, driver=None, netdev=None), "neither a netdev nor a DPDK driver"),
    (dataclasses.replace(NIC, driver="vfio-pci", netdev=None), "bound to vfio-pci"),
    (dataclasses.replace(VF, device_class=DeviceClass.ACCELERATOR), "accelerator"),
    (dataclasses.replace(VF, device_class=DeviceClass.AUX_SF, aux_name="mlx5_core.sf.4"),
     "does not attach sf devices"),
])
def test_devices_the_cni_cannot_attach_are_refused_by_name(device: VirtualFunction,
                                                           says: str) -> None:
    with pytest.raises(DeviceNotFoundError, match=says):
        device_modes.mode_of(device)


def test_a_new_class_is_one_registration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(device_modes, "CLASS_MODES", dict(device_modes.CLASS_MODES))
    device_modes.register_class(DeviceClass.AUX_SF, lambda d: "sf")
    sf = dataclasses.replace(VF, device_class=DeviceClass.AUX_SF, aux_name="mlx5_core.sf.4")
    assert device_modes.mode_of(sf) == "sf"
