"""CDI spec files (--use-cdi): the JSON shape CDI runtimes accept, kept in step with pools."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path

from deviceplugin.cdi import cdi_spec, spec_file_name
from deviceplugin.pool import PoolSpec, build_devices
from deviceplugin.simulator import KubeletSimulator
from tests.unit.test_dp_pool import dev_root, vf
from tests.unit.test_dp_support import PF0, build_tree, eventually, running_plugin

# CDI: kind = "<vendor>/<class>", device name [A-Za-z0-9][A-Za-z0-9_.:-]*
KIND = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
DEVICE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")
DEADLINE = 5.0


def assert_cdi_shape(doc: dict) -> None:
    assert set(doc) == {"cdiVersion", "kind", "devices"}
    assert doc["cdiVersion"] == "0.6.0"
    assert KIND.match(doc["kind"]), doc["kind"]
    names = [d["name"] for d in doc["devices"]]
    assert len(names) == len(set(names))
    for device in doc["devices"]:
        assert set(device) == {"name", "containerEdits"}
        assert DEVICE_NAME.match(device["name"]), device["name"]
        edits = device["containerEdits"]
        assert edits, "CDI refuses a device with empty containerEdits"
        assert set(edits) <= {"env", "deviceNodes"}
        for env in edits.get("env", []):
            assert re.match(r"^[A-Z0-9_]+=.+$", env), env
        for node in edits.get("deviceNodes", []):
            assert set(node) == {"path", "hostPath", "permissions"}
            assert node["path"].startswith("/dev/") and node["hostPath"].startswith("/dev/")


def test_spec_has_one_device_per_vf_and_vfio_nodes_only_for_vfio(tmp_path: Path) -> None:
    spec = PoolSpec(prefix="intel.com", name="mixed")
    devices = build_devices(spec, [vf("a", 0), vf("a", 1, driver="vfio-pci", group=41)],
                            lambda _: True)
    doc = cdi_spec(spec, devices, dev_root(tmp_path, "vfio/vfio", "vfio/41"))
    assert_cdi_shape(doc)
    assert doc["kind"] == "intel.com/net-pci"
    by_name = {d["name"]: d["containerEdits"] for d in doc["devices"]}
    assert by_name == {
        "0000:3b:02.0": {"env": ["PCIDEVICE_INTEL_COM_MIXED_0000_3B_02_0=0000:3b:02.0"]},
        "0000:3b:02.1": {"env": ["PCIDEVICE_INTEL_COM_MIXED_0000_3B_02_1=0000:3b:02.1"],
                         "deviceNodes": [
                             {"path": "/dev/vfio/vfio", "hostPath": "/dev/vfio/vfio",
                              "permissions": "rw"},
                             {"path": "/dev/vfio/41", "hostPath": "/dev/vfio/41",
                              "permissions": "rw"}]},
    }
    assert spec_file_name("intel.com/mixed") == "sriov-k8s-intel.com_mixed.json"


def test_running_plugin_writes_rewrites_and_removes_spec(tmp_path: Path) -> None:
    tree = build_tree(tmp_path / "host", vfio={0: "vfio-pci", 1: "vfio-pci"})
    config = {"resourceList": [
        {"resourceName": "dpdk", "selectors": [{"drivers": ["vfio-pci"]}]},
        {"resourceName": "net", "selectors": [{"drivers": ["iavf"]}]}]}
    with running_plugin(tmp_path, config, use_cdi=True) as dp:
        assert dp.sim.wait_until(lambda s: s.capacity("intel.com/net") == 6, DEADLINE)
        dpdk = dp.cdi_dir / "sriov-k8s-intel.com_dpdk.json"
        net = dp.cdi_dir / "sriov-k8s-intel.com_net.json"
        doc = json.loads(dpdk.read_text())
        assert_cdi_shape(doc)
        assert len(doc["devices"]) == 2
        assert all(len(d["containerEdits"]["deviceNodes"]) == 2 for d in doc["devices"])
        assert_cdi_shape(json.loads(net.read_text()))
        # Allocate names resolve against the spec: kind=name
        resp = dp.sim.allocate("ns", "p", "c", "intel.com/dpdk", 1).container_responses[0]
        names = {f"{doc['kind']}={d['name']}" for d in doc["devices"]}
        assert [c.name for c in resp.cdi_devices] and {c.name for c in resp.cdi_devices} <= names
        # a health flip does not rewrite; a VF count change does
        inode = net.stat().st_ino
        tree.set_carrier("enp59s0f0", up=False)
        assert dp.sim.wait_until(lambda s: len(s.allocatable("intel.com/net")) == 4, DEADLINE)
        assert net.stat().st_ino == inode
        tree.set_num_vfs(PF0, 3)
        assert dp.sim.wait_until(lambda s: s.capacity("intel.com/net") == 5, DEADLINE)
        assert eventually(lambda: len(json.loads(net.read_text())["devices"]) == 5)
    assert sorted(p.name for p in dp.cdi_dir.iterdir()) == []


def test_cli_use_cdi_writes_specs_and_sigterm_removes_them(tmp_path: Path) -> None:
    build_tree(tmp_path / "host")
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"resourceList": [
        {"resourceName": "sriov_net", "selectors": [{"drivers": ["iavf"]}]}]}))
    cdi_dir = tmp_path / "cdi"
    cdi_dir.mkdir()
    (cdi_dir / "sriov-k8s-intel.com_old.json").write_text("{}")  # left by a killed run
    (cdi_dir / "other-vendor.json").write_text("{}")
    argv = [sys.executable, "-m", "deviceplugin.cli", "--config", str(config),
            "--plugin-dir", str(tmp_path / "d"), "--sysfs-root", str(tmp_path / "host"),
            "--devinfo-dir", str(tmp_path / "devinfo"), "--use-cdi", "--cdi-dir", str(cdi_dir)]
    with KubeletSimulator(tmp_path / "d", tmp_path / "p.sock") as sim:
        proc = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True)
        try:
            assert sim.wait_until(lambda s: s.capacity("intel.com/sriov_net") == 8, 15)
            assert sorted(p.name for p in cdi_dir.iterdir()) == [
                "other-vendor.json", "sriov-k8s-intel.com_sriov_net.json"]
            resp = sim.allocate("ns", "p", "c", "intel.com/sriov_net", 1)
            pci = resp.container_responses[0].envs["PCIDEVICE_INTEL_COM_SRIOV_NET"]
            assert [c.name for c in resp.container_responses[0].cdi_devices] == [
                f"intel.com/net-pci={pci}"]
            proc.send_signal(signal.SIGTERM)
            _, stderr = proc.communicate(timeout=15)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 0, stderr
    assert sorted(p.name for p in cdi_dir.iterdir()) == ["other-vendor.json"]


def test_cdi_spec_lists_vhost_net_nodes_of_the_devices_that_need_them(tmp_path: Path) -> None:
    """needVhostNet is per selector object: the CDI devices it owns carry /dev/vhost-net and
    /dev/net/tun, exactly the nodes Allocate hands out for them; the others do not."""
    build_tree(tmp_path / "host", vfio={0: "vfio-pci"})
    for node in ("vhost-net", "net/tun"):
        (tmp_path / "host/dev" / node).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "host/dev" / node).touch()
    config = {"resourceList": [{"resourceName": "vh", "selectors": [
        {"drivers": ["vfio-pci"], "needVhostNet": True}, {"drivers": ["iavf"]}]}]}
    with running_plugin(tmp_path, config, use_cdi=True) as dp:
        assert dp.sim.wait_until(lambda s: s.capacity("intel.com/vh") == 8, DEADLINE)
        doc = json.loads((dp.cdi_dir / "sriov-k8s-intel.com_vh.json").read_text())
        assert_cdi_shape(doc)
        nodes = {d["name"]: [n["hostPath"] for n in d["containerEdits"].get("deviceNodes", [])]
                 for d in doc["devices"]}
        assert nodes.pop("0000:3b:02.0") == [
            "/dev/vfio/vfio", "/dev/vfio/1", "/dev/vhost-net", "/dev/net/tun"]
        assert set(map(tuple, nodes.values())) == {()}
        resp = dp.sim.allocate("ns", "p", "c", "intel.com/vh", 8).container_responses[0]
        assert [d.host_path for d in resp.devices] == [
            "/dev/vfio/vfio", "/dev/vfio/1", "/dev/vhost-net", "/dev/net/tun"]
