"""Pure pool logic: health, preferred allocation (NUMA, spread, pack), Allocate answers."""

from __future__ import annotations

import json

import pytest

from deviceplugin.allocation import allocate_container, devinfo_file_name, env_name
from deviceplugin.errors import DevicePluginError
from deviceplugin.pool import (
    Health,
    Policy,
    PoolDevice,
    PoolSpec,
    build_devices,
    preferred_allocation,
)
from sriov.types import IfName, LinkType, PciAddress, VirtualFunction

PFS = {"a": ("0000:3b:00.0", 0), "b": ("0000:3b:00.1", 0), "c": ("0000:86:00.0", 1)}


def vf(pf: str, idx: int, *, driver: str = "iavf", group: int | None = None,
       numa: int | None = None) -> VirtualFunction:
    pf_addr, pf_numa = PFS[pf]
    bus = pf_addr.split(":")[1]
    func = int(pf_addr[-1])
    return VirtualFunction(
        address=PciAddress(f"0000:{bus}:{2 + func:02x}.{idx}"), index=idx,
        pf_address=PciAddress(pf_addr), pf_netdev=IfName(f"pf{pf}"), vendor_id="8086",
        device_id="154c", driver=driver, netdev=None, iommu_group=group,
        numa_node=pf_numa if numa is None else numa, is_rdma=False, link_type=LinkType.ETHER)


SPEC = PoolSpec(prefix="intel.com", name="sriov")


def devices(*vfs: VirtualFunction) -> dict[str, PoolDevice]:
    return {d.id: d for d in build_devices(SPEC, vfs, lambda _: True)}


# four VFs on PF a (numa 0), two on PF b (numa 0), three on PF c (numa 1)
POOL = devices(*(vf("a", i) for i in range(4)), *(vf("b", i) for i in range(2)),
               *(vf("c", i) for i in range(3)))
A = sorted(i for i in POOL if i.startswith("0000:3b:02"))
B = sorted(i for i in POOL if i.startswith("0000:3b:03"))
C = sorted(i for i in POOL if i.startswith("0000:86"))


def pfs_of(ids: list[str]) -> list[str]:
    return sorted(POOL[i].vf.pf_address for i in ids)


@pytest.mark.parametrize(("policy", "must", "size", "available", "check"), [
    # no must_include: NUMA node with most free VFs (node 0: 6) wins
    (Policy.SPREAD, [], 2, A + B + C, lambda ids: pfs_of(ids) == ["0000:3b:00.0", "0000:3b:00.1"]),
    (Policy.PACK, [], 2, A + B + C, lambda ids: pfs_of(ids) == ["0000:3b:00.0"] * 2),
    # must_include on node 1 pulls the rest to node 1
    (Policy.SPREAD, [C[0]], 2, A + B + C, lambda ids: ids[0] == C[0] and ids[1] in C),
    # pack fills the PF of the must_include device first
    (Policy.PACK, [B[0]], 2, A + B + C, lambda ids: ids == [B[0], B[1]]),
    # spread prefers the other PF on the same node
    (Policy.SPREAD, [B[0]], 2, A + B + C, lambda ids: ids[1] in A),
    # not enough on the preferred node: spill over to the other node
    (Policy.PACK, [], 8, A + B + C, lambda ids: len(ids) == 8 and set(A + B) <= set(ids)),
    # only node-1 available
    (Policy.SPREAD, [], 2, C, lambda ids: set(ids) <= set(C) and len(ids) == 2),
    # unknown available IDs are ignored
    (Policy.SPREAD, [], 1, ["0000:99:00.0", C[2]], lambda ids: ids == [C[2]]),
    # size == len(must): exactly must
    (Policy.SPREAD, [A[1], C[1]], 2, A + B + C, lambda ids: ids == [A[1], C[1]]),
])
def test_preferred_allocation(policy, must, size, available, check) -> None:
    ids = preferred_allocation(POOL, available, must, size, policy)
    assert len(ids) == min(size, len(set(available) & set(POOL) | set(must)))
    assert len(set(ids)) == len(ids)
    assert all(m in ids for m in must)
    assert check(ids), ids


def test_spread_round_robins_over_pfs() -> None:
    pool = devices(*(vf("a", i) for i in range(4)), *(vf("b", i) for i in range(4)))
    ids = preferred_allocation(pool, list(pool), [], 4, Policy.SPREAD)
    assert sorted(pool[i].vf.pf_address for i in ids) == ["0000:3b:00.0"] * 2 + ["0000:3b:00.1"] * 2


def test_preferred_allocation_errors_name_the_field() -> None:
    with pytest.raises(DevicePluginError, match="must_include_deviceIDs"):
        preferred_allocation(POOL, A, ["0000:99:00.0"], 1, Policy.SPREAD)
    with pytest.raises(DevicePluginError, match="allocation_size"):
        preferred_allocation(POOL, A, A[:2], 1, Policy.SPREAD)


def test_health_follows_pf_carrier() -> None:
    vfs = [vf("a", 0), vf("c", 0)]
    got = build_devices(SPEC, vfs, lambda pf: pf != "pfa")
    assert [d.health for d in got] == [Health.UNHEALTHY, Health.HEALTHY]
    assert [str(d.health) for d in got] == ["Unhealthy", "Healthy"]
    # unreadable carrier (None) is not evidence of a fault
    assert build_devices(SPEC, vfs, lambda pf: None)[0].health is Health.HEALTHY


def test_exclude_topology_drops_numa() -> None:
    spec = PoolSpec(prefix="intel.com", name="x", exclude_topology=True)
    assert build_devices(spec, [vf("c", 0)], lambda _: True)[0].numa_node is None


@pytest.mark.parametrize(("name", "env"), [
    ("intel.com/sriov", "PCIDEVICE_INTEL_COM_SRIOV"),
    ("nvidia.com/mlnx_sriov_rdma", "PCIDEVICE_NVIDIA_COM_MLNX_SRIOV_RDMA"),
    ("example.org/net-a", "PCIDEVICE_EXAMPLE_ORG_NET-A"),
])
def test_env_name_like_upstream(name, env) -> None:
    assert env_name(name) == env


def dev_root(tmp_path, *nodes: str):
    """A stand-in /dev holding ``nodes`` (paths relative to /dev)."""
    root = tmp_path / "dev"
    for node in nodes:
        (root / node).parent.mkdir(parents=True, exist_ok=True)
        (root / node).touch()
    return root


def test_allocate_vfio_dedups_device_nodes_and_adds_vhost() -> None:
    spec = PoolSpec(prefix="intel.com", name="dpdk",
                    additional_info={"*": {"a": "1"}, "0000:3b:02.1": {"a": "2"}})
    vfs = [vf("a", 0, driver="vfio-pci", group=40), vf("a", 1, driver="vfio-pci", group=41)]
    devs = build_devices(spec, vfs, lambda _: True, vhost_net={vfs[1].address})
    alloc = allocate_container(spec, devs, use_cdi=True)
    # upstream's order: each device's specs in info-provider order, first host path wins
    assert [n.host_path for n in alloc.devices] == [
        "/dev/vfio/vfio", "/dev/vfio/40", "/dev/vfio/41", "/dev/vhost-net", "/dev/net/tun"]
    assert all(n.permissions == "rw" for n in alloc.devices)
    assert alloc.envs["PCIDEVICE_INTEL_COM_DPDK"] == "0000:3b:02.0,0000:3b:02.1"
    info = json.loads(alloc.envs["PCIDEVICE_INTEL_COM_DPDK_INFO"])
    assert info["0000:3b:02.0"]["vfio"] == {"mount": "/dev/vfio/vfio", "dev-mount": "/dev/vfio/40"}
    assert info["0000:3b:02.0"]["extra"] == {"a": "1"}
    assert info["0000:3b:02.1"]["extra"] == {"a": "2"}
    # needVhostNet is per device (its owning selector), not per pool
    assert "vhost" not in info["0000:3b:02.0"]
    assert info["0000:3b:02.1"]["vhost"] == {"net-mount": "/dev/vhost-net",
                                             "tun-mount": "/dev/net/tun"}
    assert alloc.cdi_devices == ("intel.com/net-pci=0000:3b:02.0", "intel.com/net-pci=0000:3b:02.1")
    only_first = allocate_container(spec, devs[:1], use_cdi=False)
    assert [n.host_path for n in only_first.devices] == ["/dev/vfio/vfio", "/dev/vfio/40"]


@pytest.mark.parametrize(("present", "nodes", "missing", "vhost_env"), [
    ({"/dev/vhost-net", "/dev/net/tun"}, ["/dev/vhost-net", "/dev/net/tun"], [], True),
    # upstream: without /dev/net/tun neither node is handed out, the env entry stays
    ({"/dev/vhost-net"}, [], ["/dev/net/tun"], True),
    # without /dev/vhost-net upstream has no vhost provider at all: no nodes, no env
    ({"/dev/net/tun"}, [], ["/dev/vhost-net"], False),
    (set(), [], ["/dev/vhost-net", "/dev/net/tun"], False),
], ids=["both", "no-tun", "no-vhost-net", "neither"])
def test_missing_vhost_nodes_are_skipped(present: set[str], nodes: list[str],
                                         missing: list[str], vhost_env: bool) -> None:
    spec = PoolSpec(prefix="intel.com", name="vhost")
    (dev,) = build_devices(spec, [vf("a", 0)], lambda _: True, vhost_net={vf("a", 0).address})
    alloc = allocate_container(spec, [dev], use_cdi=False, node_exists=present.__contains__)
    assert [n.host_path for n in alloc.devices] == nodes
    assert list(alloc.missing_nodes) == missing
    info = json.loads(alloc.envs["PCIDEVICE_INTEL_COM_VHOST_INFO"])
    assert ("vhost" in info[dev.id]) is vhost_env


def test_missing_vfio_nodes_are_skipped() -> None:
    spec = PoolSpec(prefix="intel.com", name="dpdk")
    devs = build_devices(spec, [vf("a", 0, driver="vfio-pci", group=40)], lambda _: True)
    alloc = allocate_container(spec, devs, use_cdi=False,
                               node_exists={"/dev/vfio/vfio"}.__contains__)
    assert [n.host_path for n in alloc.devices] == ["/dev/vfio/vfio"]
    assert alloc.missing_nodes == ("/dev/vfio/40",)


def test_devinfo_file_name() -> None:
    assert devinfo_file_name("intel.com/sriov", "0000:3b:02.0") == \
        "intel.com-sriov-0000:3b:02.0-device.json"
