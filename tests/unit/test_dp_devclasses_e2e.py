"""The device plugin end to end (kubelet simulator, real gRPC, emulated tree) for RDMA,
vDPA, accelerator and SF pools: what a pod's container would be given."""

from __future__ import annotations

import json
from pathlib import Path

from sriov.emulate.profiles import INTEL_N3000_FEC, MELLANOX_BF2
from sriov.emulate.tree import PfSpec, SysfsTreeBuilder
from tests.unit.test_dp_support import running_plugin

PF = "0000:3b:00.0"
DEADLINE = 5.0


def bf2_host(root: Path) -> tuple[SysfsTreeBuilder, list[str]]:
    tree = SysfsTreeBuilder(root)
    built = tree.add_pf(PfSpec(address=PF, ifname="p0", profile=MELLANOX_BF2, num_vfs=3,
                               vf_ifnames=("p0v0", "p0v1", "p0v2")))
    return tree, list(built.vf_addresses)


def test_rdma_pool_end_to_end(tmp_path: Path) -> None:
    _, vfs = bf2_host(tmp_path / "host")
    config = {"resourceList": [{"resourceName": "mlnx_rdma", "resourcePrefix": "nvidia.com",
                                "selectors": [{"vendors": ["15b3"], "isRdma": True}]}]}
    res = "nvidia.com/mlnx_rdma"
    with running_plugin(tmp_path, config) as dp:
        assert dp.sim.wait_until(lambda s: s.capacity(res) == 3, DEADLINE)
        resp = dp.sim.allocate("default", "rdma-pod", "c0", res, 2).container_responses[0]
        ids = resp.envs["PCIDEVICE_NVIDIA_COM_MLNX_RDMA"].split(",")
        assert len(ids) == 2 and set(ids) <= set(vfs)
        paths = [d.host_path for d in resp.devices]
        assert paths.count("/dev/infiniband/rdma_cm") == 1
        assert sum(p.startswith("/dev/infiniband/uverbs") for p in paths) == 2
        assert all(d.container_path == d.host_path and d.permissions == "rw"
                   for d in resp.devices)
        info = json.loads(resp.envs["PCIDEVICE_NVIDIA_COM_MLNX_RDMA_INFO"])
        assert {i: info[i]["rdma"]["rdma_dev"] for i in ids} == {
            vf: f"mlx5_{vfs.index(vf) + 1}" for vf in ids}
        for vf in ids:
            f = dp.devinfo_dir / f"nvidia.com-mlnx_rdma-{vf}-device.json"
            assert json.loads(f.read_text())["pci"]["rdma-device"] == info[vf]["rdma"]["rdma_dev"]


def test_vdpa_pool_end_to_end(tmp_path: Path) -> None:
    tree, vfs = bf2_host(tmp_path / "host")
    tree.add_vdpa(vfs[0], "vhost_vdpa")
    tree.add_vdpa(vfs[2], "vhost_vdpa")
    config = {"resourceList": [{"resourceName": "vhost_vdpa",
                                "selectors": [{"vdpaType": "vhost"}]}]}
    res = "intel.com/vhost_vdpa"
    with running_plugin(tmp_path, config, use_cdi=True) as dp:
        assert dp.sim.wait_until(lambda s: s.capacity(res) == 2, DEADLINE)
        assert set(dp.sim.devices(res)) == {vfs[0], vfs[2]}
        resp = dp.sim.allocate("default", "vdpa-pod", "c0", res, 1).container_responses[0]
        (vf,) = resp.envs["PCIDEVICE_INTEL_COM_VHOST_VDPA"].split(",")
        node = f"/dev/vhost-vdpa-{0 if vf == vfs[0] else 1}"
        # --use-cdi: the nodes travel in the CDI spec; the answer names the CDI device
        assert [c.name for c in resp.cdi_devices] == [f"intel.com/net-pci={vf}"]
        spec = json.loads((dp.cdi_dir / "sriov-k8s-intel.com_vhost_vdpa.json").read_text())
        edits = {d["name"]: d["containerEdits"] for d in spec["devices"]}
        assert edits[vf]["deviceNodes"] == [{"path": node, "hostPath": node,
                                             "permissions": "rw"}]
        info = json.loads(resp.envs["PCIDEVICE_INTEL_COM_VHOST_VDPA_INFO"])
        assert info[vf]["vdpa"] == {"mount": node}
        devinfo = json.loads((dp.devinfo_dir / f"intel.com-vhost_vdpa-{vf}-device.json")
                             .read_text())
        assert devinfo["type"] == "vdpa" and devinfo["vdpa"]["path"] == node


def test_accelerator_and_sf_pools_end_to_end(tmp_path: Path) -> None:
    tree, _ = bf2_host(tmp_path / "host")
    tree.add_sf(PF, 5, "p0s5")
    built = tree.add_pf(PfSpec(address="0000:af:00.0", ifname=None, profile=INTEL_N3000_FEC,
                               num_vfs=2))
    config = {"resourceList": [
        {"resourceName": "fec", "deviceType": "accelerator",
         "selectors": [{"devices": ["0d90"], "drivers": ["vfio-pci"]}]},
        {"resourceName": "sf", "deviceType": "auxNetDevice",
         "selectors": [{"auxTypes": ["sf"]}]}]}
    with running_plugin(tmp_path, config) as dp:
        assert dp.sim.wait_until(lambda s: s.capacity("intel.com/fec") == 2
                                 and s.capacity("intel.com/sf") == 1, DEADLINE)
        assert set(dp.sim.devices("intel.com/fec")) == set(built.vf_addresses)
        fec = dp.sim.allocate("default", "fec", "c0", "intel.com/fec", 2).container_responses[0]
        assert fec.devices[0].host_path == "/dev/vfio/vfio" and len(fec.devices) == 3
        sf = dp.sim.allocate("default", "sf", "c0", "intel.com/sf", 1).container_responses[0]
        assert sf.envs["PCIDEVICE_INTEL_COM_SF"] == "mlx5_core.sf.0"
        # device-info files are written for netDevice pools only (as upstream)
        assert not list(dp.devinfo_dir.glob("intel.com-sf-*"))
        assert not list(dp.devinfo_dir.glob("intel.com-fec-*"))


def test_safety_fingerprint_sees_new_sfs_and_vdpa_devices(tmp_path: Path) -> None:
    from deviceplugin.fingerprint import SysfsFingerprint

    tree, vfs = bf2_host(tmp_path)
    fingerprint = SysfsFingerprint(tmp_path)
    before = fingerprint()
    tree.add_sf(PF, 3, "p0s3")
    with_sf = fingerprint()
    assert with_sf != before
    tree.add_vdpa(vfs[0], "virtio_vdpa")
    assert fingerprint() != with_sf
