"""Assigning discovered VFs to pools: first pool in config order wins, and every VF
left out says why."""

from __future__ import annotations

from typing import Any

import pytest

from sriov.errors import PoolConfigError
from sriov.pools import PoolConfig, select
from sriov.types import IfName, Inventory, LinkType, PciAddress, VirtualFunction


def vf(pf: int, index: int, *, driver: str | None = "iavf", vendor: str = "8086",
       rdma: bool = False) -> VirtualFunction:
    return VirtualFunction(
        address=PciAddress(f"0000:{0x3b + pf:02x}:02.{index}"), index=index,
        pf_address=PciAddress(f"0000:{0x3b + pf:02x}:00.0"), pf_netdev=IfName(f"sriovpf{pf}"),
        vendor_id=vendor, device_id="154c", driver=driver,
        netdev=IfName(f"sriovpf{pf}v{index}") if driver not in ("vfio-pci", None) else None,
        iommu_group=None, numa_node=None, is_rdma=rdma, link_type=LinkType.ETHER)


def inventory(*vfs: VirtualFunction) -> Inventory:
    return Inventory(pfs=(), vfs=tuple(reversed(vfs)))  # discovery order must not matter


def config(*pools: dict[str, Any]) -> PoolConfig:
    return PoolConfig.parse({"resourceList": list(pools)})


def addresses(vfs: tuple[VirtualFunction, ...]) -> list[str]:
    return [v.address for v in vfs]


def test_demo_like_split_between_netdevice_and_dpdk() -> None:
    vfs = [vf(p, i, driver="vfio-pci" if i == 3 else "iavf") for p in (0, 1) for i in range(4)]
    sel = select(config(
        {"resourceName": "sriov_netdevice",
         "selectors": [{"pfNames": ["sriovpf0#0-2", "sriovpf1#0-2"], "drivers": ["iavf"]}]},
        {"resourceName": "sriov_dpdk", "selectors": [{"drivers": ["vfio-pci"]}]},
    ), inventory(*vfs))
    assert addresses(sel.pools["intel.com/sriov_netdevice"]) == [
        "0000:3b:02.0", "0000:3b:02.1", "0000:3b:02.2",
        "0000:3c:02.0", "0000:3c:02.1", "0000:3c:02.2"]
    assert addresses(sel.pools["intel.com/sriov_dpdk"]) == ["0000:3b:02.3", "0000:3c:02.3"]
    assert sel.reasons == {}
    assert sel.pool_of("0000:3c:02.3") == "intel.com/sriov_dpdk"


def test_first_pool_in_config_order_claims_and_later_match_warns() -> None:
    sel = select(config(
        {"resourceName": "first", "selectors": [{"vendors": ["8086"]}]},
        {"resourceName": "second", "selectors": [{"drivers": ["iavf"]}]},
    ), inventory(vf(0, 0)))
    assert addresses(sel.pools["intel.com/first"]) == ["0000:3b:02.0"]
    assert sel.pools["intel.com/second"] == ()
    assert sel.warnings == ("VF 0000:3b:02.0 also matches intel.com/second but "
                            "intel.com/first claimed it first",)


def test_selector_objects_are_tried_in_order_and_ored() -> None:
    pool = {"resourceName": "mixed", "selectors": [
        {"pfNames": ["sriovpf0#0"]}, {"drivers": ["vfio-pci"]}]}
    sel = select(config(pool), inventory(vf(0, 0), vf(0, 1, driver="vfio-pci"), vf(0, 2)))
    assert addresses(sel.pools["intel.com/mixed"]) == ["0000:3b:02.0", "0000:3b:02.1"]
    assert sel.reasons[PciAddress("0000:3b:02.2")] == (
        "intel.com/mixed: selectors[0] (pfNames: sriovpf0 VF 2 not in #0), "
        "selectors[1] (drivers: iavf not in [vfio-pci])")


def test_every_unselected_vf_gets_one_reason_line_per_pool() -> None:
    sel = select(config(
        {"resourceName": "intel", "selectors": {"vendors": ["8086"], "pfNames": ["sriovpf0#0-3"]}},
        {"resourceName": "rdma", "resourcePrefix": "mellanox.com",
         "selectors": {"isRdma": True}},
    ), inventory(vf(0, 5), vf(1, 0, vendor="15b3")))
    assert sel.reasons[PciAddress("0000:3b:02.5")] == (
        "intel.com/intel: pfNames: sriovpf0 VF 5 not in #0-3\n"
        "mellanox.com/rdma: isRdma: VF has no RDMA")
    assert sel.reasons[PciAddress("0000:3c:02.0")].splitlines()[0] == (
        "intel.com/intel: vendors: 15b3 not in [8086]; "
        "pfNames: PF sriovpf1 not in [sriovpf0#0-3]")


def test_no_pools_leaves_every_vf_with_a_reason() -> None:
    sel = select(PoolConfig.parse({"resourceList": []}), inventory(vf(0, 0)))
    assert sel.pools == {}
    assert sel.reasons == {"0000:3b:02.0": "no netDevice pool is configured"}


def test_an_accelerator_pool_never_takes_network_vfs() -> None:
    sel = select(config(
        {"resourceName": "fpga", "deviceType": "accelerator", "selectors": {"vendors": ["8086"]}},
    ), inventory(vf(0, 0)))
    assert sel.pools == {"intel.com/fpga": ()}
    assert sel.warnings == ()


def test_default_prefix_override_keeps_explicit_prefixes() -> None:
    cfg = config({"resourceName": "a", "selectors": {}},
                 {"resourceName": "b", "resourcePrefix": "mellanox.com", "selectors": {}})
    sel = select(cfg, inventory(vf(0, 0)), default_prefix="example.org")
    assert list(sel.pools) == ["example.org/a", "mellanox.com/b"]


def test_default_prefix_override_can_create_a_duplicate() -> None:
    cfg = config({"resourceName": "a", "selectors": {}},
                 {"resourceName": "a", "resourcePrefix": "mellanox.com", "selectors": {}})
    with pytest.raises(PoolConfigError, match=r"'mellanox\.com/a' is already defined"):
        select(cfg, inventory(), default_prefix="mellanox.com")


def test_selection_is_read_only() -> None:
    sel = select(config({"resourceName": "a", "selectors": {}}), inventory(vf(0, 0)))
    with pytest.raises(TypeError):
        sel.pools["x"] = ()  # type: ignore[index]


def test_unbound_devices_are_never_pooled_as_upstream() -> None:
    """Upstream's discovery fails on a device without a ``driver`` link and drops it, even
    for ``[{}]``; it stays listed with the reason."""
    sel = select(config({"resourceName": "all", "selectors": [{}]}),
                 inventory(vf(0, 0), vf(0, 1, driver=None)))
    assert addresses(sel.pools["intel.com/all"]) == ["0000:3b:02.0"]
    assert sel.reasons[PciAddress("0000:3b:02.1")].startswith("not bound to a driver")
