"""Each selector predicate on its own: does it match, and does its reason explain why not."""

from __future__ import annotations

import dataclasses

import pytest

from sriov.ranges import DeviceRef
from sriov.selectors import SelectorSet, VdpaType
from sriov.types import IfName, LinkType, PciAddress, VirtualFunction

VF = VirtualFunction(
    address=PciAddress("0000:3b:02.5"), index=5, pf_address=PciAddress("0000:3b:00.0"),
    pf_netdev=IfName("ens1f0"), vendor_id="8086", device_id="154c", driver="iavf",
    netdev=IfName("ens1f0v5"), iommu_group=40, numa_node=0, is_rdma=False,
    link_type=LinkType.ETHER,
)


def ref(text: str) -> DeviceRef:
    from sriov.ranges import parse_vf_indexes, split_device_ref
    device, rng = split_device_ref(text)
    if rng is None:
        return DeviceRef(device=device)
    return DeviceRef(device=device, vf_indexes=parse_vf_indexes(rng), range_text=rng)


CASES = [
    ("vendors-match", SelectorSet(vendors=("15b3", "8086")), VF, True, "vendors: 8086 in"),
    ("vendors-miss", SelectorSet(vendors=("15b3",)), VF, False, "vendors: 8086 not in [15b3]"),
    ("devices-match", SelectorSet(devices=("154c",)), VF, True, ""),
    ("devices-miss", SelectorSet(devices=("1889",)), VF, False, "devices: 154c not in [1889]"),
    ("drivers-match", SelectorSet(drivers=("iavf",)), VF, True, ""),
    ("drivers-vfio-pool", SelectorSet(drivers=("vfio-pci",)), VF, False,
     "drivers: iavf not in [vfio-pci]"),
    ("drivers-unbound", SelectorSet(drivers=("iavf",)), dataclasses.replace(VF, driver=None),
     False, "drivers: no driver not in [iavf]"),
    ("pci-match", SelectorSet(pci_addresses=(PciAddress("0000:3b:02.5"),)), VF, True, ""),
    ("pci-miss", SelectorSet(pci_addresses=(PciAddress("0000:3b:02.4"),)), VF, False,
     "pciAddresses: 0000:3b:02.5 not in [0000:3b:02.4]"),
    ("pfnames-all-vfs", SelectorSet(pf_names=(ref("ens1f0"),)), VF, True, ""),
    ("pfnames-range-match", SelectorSet(pf_names=(ref("ens1f0#0-3,5"),)), VF, True, ""),
    ("pfnames-range-miss", SelectorSet(pf_names=(ref("ens1f0#0-3"),)), VF, False,
     "pfNames: ens1f0 VF 5 not in #0-3"),
    ("pfnames-two-ranges-miss", SelectorSet(pf_names=(ref("ens1f0#0"), ref("ens1f0#7-9"))), VF,
     False, "pfNames: ens1f0 VF 5 not in #0"),
    # upstream getItem: only the FIRST entry naming the PF counts, the later one is never read
    ("pfnames-first-entry-only", SelectorSet(pf_names=(ref("ens1f0#0-1"), ref("ens1f0#5"))), VF,
     False, "pfNames: ens1f0 VF 5 not in #0-1"),
    # upstream EqualFold on the part before '#'
    ("pfnames-case-insensitive", SelectorSet(pf_names=(ref("ENS1F0#5"),)), VF, True,
     "pfNames: ens1f0 VF 5 selected"),
    ("rootdevices-case-insensitive", SelectorSet(root_devices=(ref("0000:3B:00.0"),)), VF, True,
     ""),
    ("pfnames-other-pf", SelectorSet(pf_names=(ref("ens1f1#0-3"), ref("ens2f0"))), VF, False,
     "pfNames: PF ens1f0 not in [ens1f1#0-3, ens2f0]"),
    ("pfnames-pf-without-netdev", SelectorSet(pf_names=(ref("ens1f0"),)),
     dataclasses.replace(VF, pf_netdev=None), False, "pfNames: the VF's PF has no netdev"),
    ("rootdevices-match", SelectorSet(root_devices=(ref("0000:3b:00.0#5"),)), VF, True, ""),
    ("rootdevices-miss", SelectorSet(root_devices=(ref("0000:3b:00.0#6-7"),)), VF, False,
     "rootDevices: 0000:3b:00.0 VF 5 not in #6-7"),
    ("linktypes-match", SelectorSet(link_types=("ether",)), VF, True, ""),
    ("linktypes-miss", SelectorSet(link_types=("infiniband",)), VF, False,
     "linkTypes: ether not in [infiniband]"),
    ("isrdma-miss", SelectorSet(is_rdma=True), VF, False, "isRdma: VF has no RDMA"),
    ("isrdma-match", SelectorSet(is_rdma=True), dataclasses.replace(VF, is_rdma=True), True, ""),
    ("needvhostnet-does-not-filter", SelectorSet(need_vhost_net=True), VF, True, ""),
    ("empty-selects-all", SelectorSet(), VF, True, "empty selector matches all"),
    ("acpi-absent-never-matches", SelectorSet(acpi_indexes=("1",)), VF, False,
     "acpiIndexes: no acpi index not in [1]"),
    ("ddp-unknown-never-matches", SelectorSet(ddp_profiles=("gtp",)), VF, False,
     "ddpProfiles: no ddp profile not in [gtp]"),
    ("pkeys-absent-never-matches", SelectorSet(p_keys=("0x7fff",)), VF, False,
     "pKeys: no pkey not in [0x7fff]"),
    ("vdpa-absent", SelectorSet(vdpa_type=VdpaType.VHOST), VF, False,
     "vdpaType: no vDPA device on this function"),
    ("fields-anded-all-misses-listed",
     SelectorSet(vendors=("15b3",), drivers=("iavf",), link_types=("infiniband",)), VF, False,
     "vendors: 8086 not in [15b3]; linkTypes: ether not in [infiniband]"),
]


@pytest.mark.parametrize(("selector", "vf", "matched", "reason"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_selector(selector: SelectorSet, vf: VirtualFunction, matched: bool, reason: str) -> None:
    ok, why = selector.match(vf)
    assert ok is matched
    assert reason in why


def test_predicates_follow_upstream_order() -> None:
    selector = SelectorSet(is_rdma=True, link_types=("ether",), pf_names=(ref("p"),),
                           drivers=("d",), vendors=("8086",))
    assert [p.key for p in selector.predicates()] == [
        "vendors", "drivers", "pfNames", "linkTypes", "isRdma"]
