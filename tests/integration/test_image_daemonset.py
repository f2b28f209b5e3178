"""The node image built for real and configs/k8s/daemonset.yaml run as kubelet would run it.

hack/build-image builds the image with podman from Debian packages (mmdebstrap) and PyPI. The
harness (demo/daemonset_plan.py + demo/daemonset_podman.py) reads the DaemonSet and the ConfigMap,
applies configs/emulated/daemonset-patch.yaml (the emulated host's sysfs root) and runs the
initContainers and the container under podman with the manifest's own settings, on a temp node
root with an emulated SR-IOV host, the kubelet simulator and a one-Node API server.

Checked like an operator would: the shim lands in the node's /opt/cni/bin, the Node gets its
labels, the plugin registers and serves Allocate, both probes answer, podman pods attached
through the installed shim to the agent in the container ping each other and leave nothing
behind; an upgrade to a newer image with pods attached (code 11 while no agent runs, DEL and GC
after); a node reboot followed by GC. Figures (image size, start -> registration, start -> first
ADD) are printed with ``-s`` and written to ``<workdir>/figures.json``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, is_root, unique
from tests.deferred import settle

# the first test's set-up builds the image (about 100 s cold here, more on a slow mirror)
pytestmark = [pytest.mark.root, pytest.mark.podman, pytest.mark.image, pytest.mark.slow,
              pytest.mark.timeout(1800)]

POOL = "intel.com/sriov_netdevice"
SUBNET = "10.56.217.0/24"
IMAGE = "ghcr.io/sriov-k8s/sriov-k8s:0.1.0"
IMAGE_NEXT = "ghcr.io/sriov-k8s/sriov-k8s:0.1.1"
BUILD_TIMEOUT = 1800


def _reachable(url: str) -> bool:
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen(url, timeout=15).close()
    except urllib.error.HTTPError:
        return True  # it answered (a registry's /v2/ answers 401 without a token)
    except OSError:
        return False
    return True


def _build(tag: str, version: str, *extra: str) -> dict[str, Any]:
    """hack/build-image; skips when Debian's mirror or PyPI cannot be reached."""
    t0 = time.monotonic()
    proc = subprocess.run([str(REPO / "hack/build-image"), "--tag", tag, "--version", version,
                           *extra],
                          capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False)
    if proc.returncode != 0:
        mirror = os.environ.get("SRIOV_DEBIAN_MIRROR", "http://deb.debian.org/debian")
        for url in (f"{mirror}/dists/bookworm/Release", "https://pypi.org/simple/pip/"):
            if not _reachable(url):
                pytest.skip(f"image build needs {url}, which is not reachable from here")
        pytest.fail(f"hack/build-image failed:\n{proc.stderr[-4000:]}")
    tag_out, image_id, size, *_ = proc.stdout.split()
    return {"tag": tag_out, "id": image_id, "size_bytes": int(size),
            "build_s": round(time.monotonic() - t0, 1)}


class Scenario:
    """The node, its kubelet/API-server stand-ins, the DaemonSet pod and the pods runtime."""

    def __init__(self, workdir: Path) -> None:
        from demo.node import NodeLayout

        self.layout = NodeLayout(workdir=workdir)
        self.tag = unique("")
        self.figures: dict[str, Any] = {}
        self.stack = contextlib.ExitStack()
        self.pod: Any = None

    # -- set-up, in order; everything registered for tear-down on the ExitStack
    def up(self) -> None:
        from demo.apiserver_sim import ApiServerSim
        from demo.daemonset_podman import Store
        from demo.node import install_launcher
        from demo.podman import Podman, PodmanSetup
        from deviceplugin.simulator.kubelet import KubeletSimulator
        from sriov.emulate import host as emulated
        from sriov.emulate.spec import EmulationSpec
        from sriov.netlink import Netlink

        layout, tag = self.layout, self.tag
        self.store = Store.default()
        self.nl = self.stack.enter_context(Netlink())
        spec = EmulationSpec(pfs=2, vfs=3, pf_prefix=f"st{tag}p", wire_prefix=f"st{tag}w",
                             bridge=f"st{tag}b")
        layout.emu.mkdir(parents=True)
        (layout.root / "var").mkdir()
        (layout.root / "var" / "run").symlink_to("../run")  # as on Debian: /var/run is /run
        emulated.up(layout.emu, spec, self.nl)
        self.stack.callback(emulated.down, layout.emu, self.nl)
        self.kubelet = KubeletSimulator(layout.plugin_dir, layout.pod_resources)
        self.kubelet.start()
        self.stack.callback(self.kubelet.stop)
        self.api = ApiServerSim(f"st-node-{tag}", layout.workdir).start()
        self.stack.callback(self.api.stop)
        install_launcher(layout)
        self.pods = Podman(PodmanSetup(workdir=layout.podman,
                                       plugin_dirs=(layout.launcher_dir, Path("/usr/lib/cni"))))
        reason = self.pods.probe()
        if reason is not None:
            pytest.skip(reason)
        self.stack.callback(self.pods.close)
        self.stack.callback(self.stop_pod)
        from demo import snapshot

        self.before = snapshot.take(layout.emu, self.nl, layout.cni_state, layout.ipam)

    def service_account(self) -> Any:
        from demo.daemonset_plan import ServiceAccount

        return ServiceAccount(token=self.api.token, ca_crt=self.api.cert.read_text(),
                              api_host="127.0.0.1", api_port=self.api.port)

    def start_pod(self, image: str | None = None) -> Any:
        """A new DaemonSet pod (as after create or a rolling update), started by the harness."""
        from demo.daemonset_podman import PodRunner
        from demo.node import daemonset, plan

        ds = daemonset(image=image)
        runner = PodRunner(plan(self.layout, ds, node_name=self.api.node["metadata"]["name"],
                                service_account=self.service_account()), self.store)
        self.pod = runner
        runner.start()
        return runner

    def stop_pod(self) -> None:
        if self.pod is not None:
            self.pod.stop()

    def main_container(self) -> Any:
        (container,) = [c for c in self.pod.plan.containers if c.name == "sriov-device-plugin"]
        return container

    def wait_registered(self, deadline_s: float = 120.0) -> float:
        """Seconds from the container's start to the pool's devices at the kubelet."""
        start = self.pod.started_at["sriov-device-plugin"]
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            if self.kubelet.capacity(POOL) > 0:
                return time.monotonic() - start
            if not self.pod.running(self.main_container()):
                break
            time.sleep(0.02)
        pytest.fail(f"{POOL} never registered; container log:\n"
                    f"{self.pod.logs(self.main_container())[-4000:]}")

    def conflist(self, name: str, device_id: str | None, version: str = "1.0.0") -> dict[str, Any]:
        """A NAD-like list; ``device_id`` is what Multus adds from the allocation (None: GC)."""
        ipam = {"type": "host-local", "subnet": SUBNET}  # dataDir: the agent's (node) default
        plugin: dict[str, Any] = {"type": "sriov", "vlan": 0, "ipam": ipam}
        if device_id is not None:
            plugin |= {"deviceID": device_id, "pciBusID": device_id}
        return {"cniVersion": version, "name": name, "plugins": [plugin]}

    def first_vf(self) -> str:
        from sriov.sysfs import SysfsReader

        return sorted(vf.address for vf in SysfsReader(self.layout.emu).inventory().vfs)[0]

    def shim(self, command: str, conf: dict[str, Any], container_id: str, netns: str = "",
             ) -> subprocess.CompletedProcess[bytes]:
        """The installed shim run as a runtime runs it (through the node launcher)."""
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "CNI_COMMAND": command,
               "CNI_CONTAINERID": container_id, "CNI_NETNS": netns, "CNI_IFNAME": "net1",
               "CNI_PATH": f"{self.layout.launcher_dir}:/usr/lib/cni"}
        return subprocess.run([str(self.layout.launcher_dir / "sriov")],
                              input=json.dumps(conf).encode(), env=env, capture_output=True,
                              timeout=60, check=False)

    def wait_agent(self, deadline_s: float = 60.0) -> subprocess.CompletedProcess[bytes]:
        """STATUS (CNI 1.1) through the installed shim until the agent answers (code 11 until
        then). Not VERSION: the native shim answers that itself, agent or not."""
        end = time.monotonic() + deadline_s
        conf = {**self.conflist("st-status", None, version="1.1.0")["plugins"][0],
                "cniVersion": "1.1.0", "name": "st-status"}
        while True:
            reply = self.shim("STATUS", conf, "")
            if reply.returncode == 0 or time.monotonic() > end:
                return reply
            assert json.loads(reply.stdout)["code"] == 11, reply.stdout
            time.sleep(0.05)

    def leaks(self) -> list[str]:
        from demo import snapshot

        after = snapshot.take(self.layout.emu, self.nl, self.layout.cni_state, self.layout.ipam)
        return snapshot.differences(self.before, after)


def _wait_no_leaks(scenario: Scenario, deadline_s: float = 30.0) -> list[str]:
    """The kernel destroys a netns asynchronously: poll the leak check with a deadline."""
    end = time.monotonic() + deadline_s
    problems = scenario.leaks()
    while problems and time.monotonic() < end:
        time.sleep(0.5)
        problems = scenario.leaks()
    return problems


@pytest.fixture(scope="module")
def scenario() -> Iterator[Scenario]:
    if not is_root():
        pytest.skip("needs root: podman with privileged, hostNetwork containers and real links")
    for tool in ("podman", "mmdebstrap", "openssl"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (hack/setup.sh installs it)")
    figures = _build(IMAGE, "0.1.0")
    workdir = Path(tempfile.mkdtemp(prefix="st", dir="/tmp"))  # short: unix sockets live below
    s = Scenario(workdir)
    s.figures["image"] = figures
    try:
        s.up()
        s.start_pod()
        s.figures["start_to_registration_s"] = round(s.wait_registered(), 3)
        s.figures["pod_create_to_registration_s"] = round(
            s.pod.started_at["sriov-device-plugin"] - s.pod.created_at
            + s.figures["start_to_registration_s"], 3)
        yield s
    finally:
        s.stack.close()
        (workdir / "figures.json").write_text(json.dumps(s.figures, indent=1))
        print(f"\nimage/DaemonSet figures: {json.dumps(s.figures)}")
        shutil.rmtree(workdir, ignore_errors=True)


# ---------------------------------------------------------------- the pod as kubelet runs it

def test_init_container_installed_the_shim_in_the_nodes_cni_bin(scenario: Scenario) -> None:
    shim = scenario.layout.cni_bin / "sriov"
    assert shim.is_file() and os.access(shim, os.X_OK)
    reply = scenario.shim("VERSION", {"cniVersion": "1.0.0"}, "")
    assert reply.returncode == 0, reply.stdout + reply.stderr
    assert "1.0.0" in json.loads(reply.stdout)["supportedVersions"]
    assert scenario.wait_agent().returncode == 0, "STATUS through the shim: no agent answered"


def test_node_labels_init_container_labelled_the_node(scenario: Scenario) -> None:
    labels = scenario.api.node["metadata"]["labels"]
    assert labels["sriov-k8s.io/sriov-capable"] == "true"
    assert labels["sriov-k8s.io/pf-count"] == "2" and labels["sriov-k8s.io/vf-count"] == "6"
    node = scenario.api.node["metadata"]["name"]
    assert ("PATCH", f"/api/v1/nodes/{node}") in scenario.api.requests


def test_device_plugin_registered_and_serves_allocate(scenario: Scenario) -> None:
    assert scenario.kubelet.capacity(POOL) == 6
    response = scenario.kubelet.allocate("default", "st-alloc", "c0", POOL, 1)
    (container,) = response.container_responses
    (device,) = [a.device_ids for a in scenario.kubelet.allocations() if a.pod == "st-alloc"]
    assert any(device[0] in v for v in container.envs.values()), container.envs
    scenario.kubelet.release("default", "st-alloc")


def test_liveness_and_readiness_probes_answer(scenario: Scenario) -> None:
    container = scenario.main_container()
    for probe in (container.liveness, container.readiness):
        assert probe is not None
        # on kubelet's schedule: after initialDelaySeconds, successThreshold successes in a row
        result = scenario.pod.wait_probe(container, probe, deadline_s=probe.period_s * 3)
        assert result.ok, result.detail


def test_first_add_through_the_installed_shim(scenario: Scenario) -> None:
    """From container start to the first ADD that succeeds (a fresh pod started here: the
    runtime retries on code 11 until the agent answers), then its DEL."""
    scenario.stop_pod()
    netns = unique("st-ds-")
    subprocess.run(["ip", "netns", "add", netns], check=True)
    try:
        scenario.start_pod()
        start = scenario.pod.started_at["sriov-device-plugin"]
        conf = scenario.conflist("st-first", scenario.first_vf())
        conf = {**conf["plugins"][0], "cniVersion": "1.0.0", "name": "st-first"}
        retries = 0
        while True:
            proc = scenario.shim("ADD", conf, "st-first-add", f"/run/netns/{netns}")
            if proc.returncode == 0:
                break
            assert json.loads(proc.stdout)["code"] == 11, proc.stdout
            retries += 1
            assert time.monotonic() - start < 120, "the agent never answered"
            time.sleep(0.05)
        scenario.figures["start_to_first_add_s"] = round(time.monotonic() - start, 3)
        scenario.figures["first_add_code11_retries"] = retries
        assert json.loads(proc.stdout)["interfaces"]
        assert scenario.shim("DEL", conf, "st-first-add", f"/run/netns/{netns}").returncode == 0
        scenario.wait_registered()
    finally:
        subprocess.run(["ip", "netns", "del", netns], check=False)
    assert _wait_no_leaks(scenario) == []


def test_native_shim_needs_no_python_on_the_node(scenario: Scenario) -> None:
    """The installed sriov is a static executable: in a busybox-static container (no python3,
    no libc) it answers VERSION itself and attaches a netns through the agent in the pod."""
    from demo.podman import IMAGE as BUSYBOX_IMAGE

    shim = scenario.layout.cni_bin / "sriov"
    assert shim.read_bytes()[:4] == b"\x7fELF", "the node's sriov is not the native shim"
    ldd = subprocess.run(["ldd", str(shim)], capture_output=True, text=True, check=False)
    assert ldd.returncode != 0 and "not a dynamic executable" in ldd.stdout + ldd.stderr
    run = ("run", "--rm", "-i", "--network", "none", "--ulimit", "nofile=1024:1024",
           "--ulimit", "nproc=1024:1024", "--volume", f"{shim}:/opt/cni/bin/sriov:ro",
           "--volume", f"{scenario.layout.agent_socket.parent}:/run/sriov-k8s",
           "--volume", "/run/netns:/run/netns:rslave")
    no_python = scenario.pods.cmd(*run, BUSYBOX_IMAGE, "sh", "-c",
                                  "ls /usr/bin/python3 /bin/python3 /lib 2>&1; true").stdout
    assert no_python.count("No such file") == 3, no_python
    netns = unique("st-np-")
    subprocess.run(["ip", "netns", "add", netns], check=True)
    conf = scenario.conflist("st-nopy", scenario.first_vf())
    conf = {**conf["plugins"][0], "cniVersion": "1.0.0", "name": "st-nopy"}

    def shim_in_busybox(command: str) -> subprocess.CompletedProcess[str]:
        env = [f"CNI_COMMAND={command}", "CNI_CONTAINERID=st-nopy", f"CNI_NETNS=/run/netns/{netns}",
               "CNI_IFNAME=net1", "CNI_PATH=/opt/cni/bin"]
        env_args = [a for e in env for a in ("--env", e)]
        return scenario.pods.cmd(*run, *env_args, BUSYBOX_IMAGE, "/opt/cni/bin/sriov",
                                 input=json.dumps(conf), check=False)

    try:
        version = shim_in_busybox("VERSION")
        assert version.returncode == 0, version.stdout + version.stderr
        assert "1.1.0" in json.loads(version.stdout)["supportedVersions"]
        add = shim_in_busybox("ADD")
        assert add.returncode == 0, add.stdout + add.stderr
        assert json.loads(add.stdout)["ips"][0]["address"].startswith("10.56.217.")
        delete = shim_in_busybox("DEL")
        assert delete.returncode == 0, delete.stdout + delete.stderr
    finally:
        subprocess.run(["ip", "netns", "del", netns], check=False)
    assert _wait_no_leaks(scenario) == []


# ---------------------------------------------------------------- pods through the shim

def _attach(scenario: Scenario, name: str) -> tuple[str, str]:
    """Allocate a VF for pod ``name`` and start it on a Multus-style list; -> (id, IP)."""
    scenario.kubelet.allocate("default", name, "c0", POOL, 1)
    (vf,) = [a.device_ids[0] for a in scenario.kubelet.allocations() if a.pod == name]
    # one network (one NAD, one IPAM range) for every pod; Multus writes the pod's deviceID into
    # the config it hands the plugin, so the network file is rewritten per pod (as demo/runner.py)
    network = scenario.pods.add_network(scenario.conflist(f"st-net-{scenario.tag}", vf))
    container_id = scenario.pods.run(name, network)
    out = scenario.pods.exec(name, "ip", "-4", "-o", "addr", "show", "eth0", check=True).stdout
    ip = out.split(" inet ")[1].split("/")[0]
    return container_id, ip


def _detach(scenario: Scenario, name: str) -> str:
    """``podman rm -f`` (CNI DEL); returns podman's stderr, where it reports a failed DEL."""
    scenario.pods.remove(name)
    proc = scenario.pods.last
    scenario.kubelet.release("default", name)
    return proc.stderr if proc is not None else ""


def test_podman_pods_attach_through_the_shim_ping_and_leave_nothing(scenario: Scenario) -> None:
    a, b = unique("st-pa-"), unique("st-pb-")
    try:
        _, ip_a = _attach(scenario, a)
        _, ip_b = _attach(scenario, b)
        ping = scenario.pods.exec(a, "ping", "-c", "2", "-W", "5", ip_b)
        assert ping.returncode == 0, ping.stdout + ping.stderr
        assert ip_a != ip_b
    finally:
        for pod in (a, b):
            with contextlib.suppress(Exception):
                _detach(scenario, pod)
    assert _wait_no_leaks(scenario) == []


# ---------------------------------------------------------------- operations

def test_upgrade_with_pods_attached_then_del_and_gc(scenario: Scenario) -> None:
    """Rolling update to a newer image build while two pods are attached: the old pod goes,
    the shim answers code 11 until the new agent runs, then DEL (pod a) and GC (pod b's
    attachment no longer valid) both work and nothing leaks."""
    scenario.figures["image_next"] = _build(IMAGE_NEXT, "0.1.1")
    a, b = unique("st-ua-"), unique("st-ub-")
    try:
        _attach(scenario, a)
        _attach(scenario, b)
        scenario.stop_pod()
        conf = scenario.conflist("st-upg", scenario.first_vf())
        plugin = {**conf["plugins"][0], "cniVersion": "1.0.0", "name": "st-upg"}
        proc = scenario.shim("ADD", plugin, "st-upg")
        assert proc.returncode != 0 and json.loads(proc.stdout)["code"] == 11, proc.stdout
        scenario.start_pod(image=IMAGE_NEXT)
        scenario.wait_registered()
        ran = scenario.store.run("inspect", "--format", "{{.ImageName}}",
                                 scenario.pod.container_name(scenario.main_container())).stdout
        assert ran.strip() == IMAGE_NEXT
        assert scenario.wait_agent().returncode == 0
        from demo.snapshot import lease_files, state_records

        records = state_records(scenario.layout.cni_state)
        leases = lease_files(scenario.layout.ipam)
        warnings = _detach(scenario, a)  # DEL through the new agent (podman only warns on failure)
        settle(scenario.layout.cni_state)  # the VF's restore runs after DEL's answer (deferred)
        assert len(state_records(scenario.layout.cni_state)) < len(records), (
            f"DEL left a's record; podman said: {warnings}")
        assert len(lease_files(scenario.layout.ipam)) == len(leases) - 1, "DEL left a's lease"
        # GC as a CNI 1.1 runtime sends it, naming the attachments still valid: none (b's pod is
        # gone for the runtime) -> the agent releases b's VF, address and records without a DEL
        network = f"st-net-{scenario.tag}"
        net = scenario.conflist(network, None, version="1.1.0")
        gc = {**net["plugins"][0], "cniVersion": "1.1.0", "name": network,
              "cni.dev/valid-attachments": []}
        proc = scenario.shim("GC", gc, "")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert not [f for f in scenario.leaks() if "state file" in f or "lease" in f]
    finally:
        for pod in (a, b):
            with contextlib.suppress(Exception):
                _detach(scenario, pod)
    assert _wait_no_leaks(scenario) == []


def test_node_reboot_then_gc_cleans_up(scenario: Scenario) -> None:
    """Pods attached, then power loss: every container and all of /run gone (the emulated
    hardware stays), the host-path state dir kept. After boot the DaemonSet comes back and a GC
    with no valid attachments leaves nothing behind."""
    from demo.cni_exec import CniRunner
    from demo.netns_runtime import NetnsRuntime

    runtime = NetnsRuntime([scenario.layout.launcher_dir, Path("/usr/lib/cni")], dict(os.environ))
    pods = [unique("st-rb-"), unique("st-rb-")]
    network = unique("st-rbnet-")  # one NAD, two pods: GC is per network
    for name in pods:  # this runtime passes K8S_POD_NAMESPACE = the pod's name
        scenario.kubelet.allocate(name, name, "c0", POOL, 1)
        (vf,) = [a.device_ids[0] for a in scenario.kubelet.allocations() if a.pod == name]
        runtime.run(name, runtime.add_network(scenario.conflist(network, vf, version="1.1.0")))
    assert scenario.leaks() != [], "the pods left no state to clean up: nothing to test"
    # power loss
    scenario.pod.kill()
    for name in pods:
        runtime.kill_netns(name)
        scenario.kubelet.release(name, name)
    run = scenario.layout.path("/run")
    for entry in run.iterdir():
        if entry != scenario.layout.emu:
            shutil.rmtree(entry)
    assert any(scenario.layout.cni_state.iterdir()), "the state dir survives a reboot"
    scenario.kubelet.restart()  # kubelet starts afresh: plugin sockets wiped
    scenario.start_pod()
    scenario.wait_registered()
    assert scenario.wait_agent().returncode == 0
    cni = CniRunner([scenario.layout.launcher_dir, Path("/usr/lib/cni")], dict(os.environ))
    cni.gc(scenario.conflist(network, None, version="1.1.0"), valid=[])
    assert _wait_no_leaks(scenario) == []


def test_a_registry_base_builds_too() -> None:
    """The BASE build argument with Debian's registry image: the packages it lacks come from
    apt inside the build. Only where a registry answers (not on the dev VM)."""
    if not is_root() or shutil.which("podman") is None:
        pytest.skip("needs root and podman")
    if not _reachable("https://registry-1.docker.io/v2/"):
        pytest.skip("docker.io is not reachable from here: the registry base is not built")
    figures = _build("localhost/sriov-k8s-registry-base:test", "0.1.0",
                     "--base", "docker.io/library/debian:bookworm-slim")
    assert figures["size_bytes"] > 0
