"""The device plugin against the kubelet simulator and an emulated sysfs tree (no root)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import grpc
import pytest

from deviceplugin.api.podresources.v1 import api_pb2 as pr
from deviceplugin.api.podresources.v1 import api_pb2_grpc as pr_grpc
from deviceplugin.simulator import KubeletSimulator
from tests.unit.test_dp_support import NETDEV_CONFIG, PF0, build_tree, running_plugin, write_config

RES = "intel.com/sriov_net"
DEADLINE = 5.0


def _health(sim: KubeletSimulator, resource: str) -> dict[str, str]:
    return {i: d.health for i, d in sim.devices(resource).items()}


def test_registers_and_lists_all_vfs_with_numa(tmp_path: Path) -> None:
    tree = build_tree(tmp_path / "host")
    with running_plugin(tmp_path, NETDEV_CONFIG) as dp:
        assert dp.sim.wait_until(lambda s: s.capacity(RES) == 8, DEADLINE)
        devices = dp.sim.devices(RES)
        assert set(_health(dp.sim, RES).values()) == {"Healthy"}
        numa = {i: [n.ID for n in d.topology.nodes] for i, d in devices.items()}
        assert numa[tree.sys.joinpath("bus/pci/devices").iterdir().__next__().name] is not None
        assert sorted({tuple(v) for v in numa.values()}) == [(0,), (1,)]
        assert dp.sim.registrations[RES] == 1


def test_pf_carrier_down_marks_its_vfs_unhealthy_and_back(tmp_path: Path) -> None:
    tree = build_tree(tmp_path / "host")
    with running_plugin(tmp_path, NETDEV_CONFIG) as dp:
        assert dp.sim.wait_until(lambda s: len(s.allocatable(RES)) == 8, DEADLINE)
        tree.set_carrier("enp59s0f0", up=False)
        assert dp.sim.wait_until(lambda s: len(s.allocatable(RES)) == 4, DEADLINE)
        unhealthy = sorted(i for i, h in _health(dp.sim, RES).items() if h == "Unhealthy")
        assert all(i.startswith("0000:3b:") for i in unhealthy) and len(unhealthy) == 4
        tree.set_carrier("enp59s0f0", up=True)
        assert dp.sim.wait_until(lambda s: len(s.allocatable(RES)) == 8, DEADLINE)


def test_lowering_numvfs_removes_vfs(tmp_path: Path) -> None:
    tree = build_tree(tmp_path / "host")
    with running_plugin(tmp_path, NETDEV_CONFIG) as dp:
        assert dp.sim.wait_until(lambda s: s.capacity(RES) == 8, DEADLINE)
        tree.set_num_vfs(PF0, 2)
        assert dp.sim.wait_until(lambda s: s.capacity(RES) == 6, DEADLINE)


def test_driver_rebind_moves_vf_between_pools(tmp_path: Path) -> None:
    tree = build_tree(tmp_path / "host")
    config = {"resourceList": [
        {"resourceName": "sriov_net", "selectors": [{"drivers": ["iavf"]}]},
        {"resourceName": "sriov_dpdk", "selectors": [{"drivers": ["vfio-pci"]}]},
    ]}
    vf = tree.set_num_vfs(PF0, 4)[3]
    with running_plugin(tmp_path, config) as dp:
        assert dp.sim.wait_until(lambda s: s.capacity(RES) == 8, DEADLINE)
        tree.bind_vf_driver(vf, "vfio-pci")
        assert dp.sim.wait_until(lambda s: s.capacity(RES) == 7
                                 and s.capacity("intel.com/sriov_dpdk") == 1, DEADLINE)
        assert list(dp.sim.devices("intel.com/sriov_dpdk")) == [vf]


def test_config_edit_adds_pool_and_bad_edit_keeps_pools(tmp_path: Path) -> None:
    build_tree(tmp_path / "host")
    with running_plugin(tmp_path, NETDEV_CONFIG) as dp:
        assert dp.sim.wait_until(lambda s: s.capacity(RES) == 8, DEADLINE)
        config = {"resourceList": [
            {"resourceName": "sriov_net", "selectors": [{"pfNames": ["enp59s0f0"]}]},
            {"resourceName": "sriov_b", "selectors": [{"pfNames": ["enp94s0f0"]}]},
        ]}
        write_config(tmp_path / "etc/config.json", config)
        assert dp.sim.wait_until(lambda s: s.capacity(RES) == 4
                                 and s.capacity("intel.com/sriov_b") == 4, DEADLINE)
        (tmp_path / "etc/config.json").write_text('{"resourceList": [{"resourceName": 7}]}')
        assert dp.config_rejected.wait(DEADLINE)
        assert dp.metrics.config_reload_failures._value.get() == 1
        assert dp.sim.resources() == ["intel.com/sriov_b", RES]
        assert dp.sim.capacity(RES) == 4


def test_configmap_style_symlink_swap_is_picked_up(tmp_path: Path) -> None:
    build_tree(tmp_path / "host")
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "..v1").mkdir()
    (etc / "..v1/config.json").write_text(json.dumps(NETDEV_CONFIG))
    (etc / "..data").symlink_to("..v1")
    (etc / "config.json").symlink_to("..data/config.json")
    with running_plugin(tmp_path, NETDEV_CONFIG) as dp:
        assert dp.sim.wait_until(lambda s: s.capacity(RES) == 8, DEADLINE)
        (etc / "..v2").mkdir()
        (etc / "..v2/config.json").write_text(json.dumps({"resourceList": [
            {"resourceName": "sriov_net", "selectors": [{"pfNames": ["enp94s0f0"]}]}]}))
        (etc / "..data_tmp").symlink_to("..v2")
        (etc / "..data_tmp").replace(etc / "..data")
        assert dp.sim.wait_until(lambda s: s.capacity(RES) == 4, DEADLINE)


def test_kubelet_restart_reregisters(tmp_path: Path) -> None:
    build_tree(tmp_path / "host")
    with running_plugin(tmp_path, NETDEV_CONFIG) as dp:
        assert dp.sim.wait_until(lambda s: s.capacity(RES) == 8, DEADLINE)
        old_socket = dp.manager.servers[RES].socket_name
        dp.sim.restart()
        assert dp.sim.wait_until(lambda s: s.registrations.get(RES) == 2
                                 and s.capacity(RES) == 8, 1.0 + 1.0)
        assert dp.manager.servers[RES].socket_name != old_socket
        assert (dp.plugin_dir / dp.manager.servers[RES].socket_name).exists()


def test_allocate_netdevice_env_and_devinfo(tmp_path: Path) -> None:
    build_tree(tmp_path / "host")
    with running_plugin(tmp_path, NETDEV_CONFIG) as dp:
        assert dp.sim.wait_until(lambda s: len(s.allocatable(RES)) == 8, DEADLINE)
        resp = dp.sim.allocate("default", "pod-a", "c0", RES, 2).container_responses[0]
        ids = resp.envs["PCIDEVICE_INTEL_COM_SRIOV_NET"].split(",")
        assert len(ids) == 2
        info = json.loads(resp.envs["PCIDEVICE_INTEL_COM_SRIOV_NET_INFO"])
        assert set(info) == set(ids)
        assert info[ids[0]]["generic"] == {"deviceID": ids[0]}
        assert list(resp.devices) == []  # kernel netdev VFs get no device node
        for pci in ids:
            f = dp.devinfo_dir / f"intel.com-sriov_net-{pci}-device.json"
            assert json.loads(f.read_text())["pci"]["pci-address"] == pci
        # NUMA first: both PFs have 4 free VFs on their own node, so node 0 (PF 3b) wins
        assert {i.split(":")[1] for i in ids} == {"3b"}


def test_devinfo_files_are_read_only_and_rewritten_on_every_allocate(tmp_path: Path) -> None:
    """As upstream: mode 0444, and each Allocate writes the file again, so a file damaged
    or edited since the last Allocate of that VF is what the new pod's CNI reads no more."""
    build_tree(tmp_path / "host")
    with running_plugin(tmp_path, NETDEV_CONFIG) as dp:
        assert dp.sim.wait_until(lambda s: len(s.allocatable(RES)) == 8, DEADLINE)
        dp.sim.allocate("default", "pod-a", "c0", RES, 8)
        files = sorted(dp.devinfo_dir.glob("intel.com-sriov_net-*-device.json"))
        assert len(files) == 8
        assert {stat.S_IMODE(f.stat().st_mode) for f in files} == {0o444}
        expected = {f: f.read_text() for f in files}
        for f in files:  # another writer replaced them (the dir is writable, the file not)
            f.chmod(0o644)
            f.write_text('{"stale": true}')
        dp.sim.release("default", "pod-a")
        dp.sim.allocate("default", "pod-b", "c0", RES, 8)
        assert {f: f.read_text() for f in files} == expected
        assert {stat.S_IMODE(f.stat().st_mode) for f in files} == {0o444}
        assert not list(dp.devinfo_dir.glob(".tmp-*"))


def test_allocate_vfio_device_specs(tmp_path: Path) -> None:
    build_tree(tmp_path / "host", vfio={0: "vfio-pci", 1: "vfio-pci"})
    config = {"resourceList": [{"resourceName": "dpdk", "selectors": [{"drivers": ["vfio-pci"]}],
                                "additionalInfo": {"*": {"k": "v"}}}]}
    with running_plugin(tmp_path, config) as dp:
        res = "intel.com/dpdk"
        assert dp.sim.wait_until(lambda s: len(s.allocatable(res)) == 2, DEADLINE)
        resp = dp.sim.allocate("default", "pod-d", "c0", res, 2).container_responses[0]
        paths = [(d.container_path, d.host_path, d.permissions) for d in resp.devices]
        assert paths[0] == ("/dev/vfio/vfio", "/dev/vfio/vfio", "rw")
        groups = [p for p in paths[1:]]
        assert len(groups) == 2 and all(p[0].startswith("/dev/vfio/") for p in groups)
        info = json.loads(resp.envs["PCIDEVICE_INTEL_COM_DPDK_INFO"])
        for entry in info.values():
            assert entry["vfio"]["mount"] == "/dev/vfio/vfio"
            assert entry["extra"] == {"k": "v"}


def test_unknown_id_is_rejected_naming_it(tmp_path: Path) -> None:
    build_tree(tmp_path / "host")
    with running_plugin(tmp_path, NETDEV_CONFIG) as dp:
        assert dp.sim.wait_until(lambda s: s.capacity(RES) == 8, DEADLINE)
        from deviceplugin.api.v1beta1 import api_pb2 as pb
        from deviceplugin.api.v1beta1 import api_pb2_grpc as pb_grpc
        sock = dp.plugin_dir / dp.manager.servers[RES].socket_name
        with grpc.insecure_channel(f"unix://{sock}") as ch, \
                pytest.raises(grpc.RpcError) as err:
            pb_grpc.DevicePluginStub(ch).Allocate(pb.AllocateRequest(container_requests=[
                    pb.ContainerAllocateRequest(devices_ids=["0000:99:00.1"])]), timeout=5)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "0000:99:00.1" in err.value.details()


def test_pod_resources_lists_allocations(tmp_path: Path) -> None:
    build_tree(tmp_path / "host")
    with running_plugin(tmp_path, NETDEV_CONFIG) as dp:
        assert dp.sim.wait_until(lambda s: len(s.allocatable(RES)) == 8, DEADLINE)
        dp.sim.allocate("ns1", "pod-p", "c0", RES, 1)
        with grpc.insecure_channel(f"unix://{dp.sim.pod_resources_socket}") as ch:
            stub = pr_grpc.PodResourcesListerStub(ch)
            pods = stub.List(pr.ListPodResourcesRequest(), timeout=5).pod_resources
            alloc = stub.GetAllocatableResources(pr.AllocatableResourcesRequest(), timeout=5)
        assert [(p.namespace, p.name) for p in pods] == [("ns1", "pod-p")]
        dev = pods[0].containers[0].devices[0]
        assert dev.resource_name == RES and len(dev.device_ids) == 1
        assert len(alloc.devices) == 8
