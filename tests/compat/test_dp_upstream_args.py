"""The real ``sriov-device-plugin`` console script started with the args that upstream's and
the operator's DaemonSets pass, registering with the kubelet simulator.

Only the flags that point at this test's sandbox (kubelet dir, sysfs root, device-info and
CDI dirs, the root of ``--log-dir``) are ours; the rest is the manifests' ``args`` verbatim:

- sriov-network-operator: ``--log-level=10 --resource-prefix=openshift.io
  --config-file=/etc/pcidp/$(NODE_NAME)`` with its rendered per-node config;
- upstream ``deployments/sriovdp-daemonset.yaml``: ``--log-dir=sriovdp --log-level=10``;
- upstream ``deployments/cdi/sriovdp-daemonset.yaml``: the same plus ``--use-cdi``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from deviceplugin.simulator import KubeletSimulator
from tests.compat.host import build_node

CORPUS = Path(__file__).parent / "corpus" / "pools"
OPERATOR_CONFIG = CORPUS / "operator-selectorobjs" / "config.json"
NODE_NAME = "worker-0"
SCRIPT = Path(sys.executable).with_name("sriov-device-plugin")
VHOST_DEVICES = ["0000:3b:0a.0", "0000:3b:0a.1"]

ARGS = {
    "operator": (["--log-level=10", "--resource-prefix=openshift.io",
                  f"--config-file=/etc/pcidp/{NODE_NAME}"], "openshift.io"),
    "upstream-daemonset": (["--log-dir=sriovdp", "--log-level=10"], "intel.com"),
    "upstream-cdi-daemonset": (["--log-dir=sriovdp", "--log-level=10", "--use-cdi"],
                               "intel.com"),
}


def _sandboxed(args: list[str], tmp_path: Path) -> list[str]:
    """The manifest's args with /etc/pcidp moved into the sandbox, plus our sandbox flags."""
    etc = tmp_path / "etc" / "pcidp"
    args = [a.replace("/etc/pcidp/", f"{etc}/") for a in args]
    if not any(a.startswith("--config-file") for a in args):
        args.append(f"--config-file={etc}/config.json")  # upstream's default path, sandboxed
    return [*args, "--plugin-dir", str(tmp_path / "d"), "--sysfs-root", str(tmp_path / "node"),
            "--devinfo-dir", str(tmp_path / "devinfo"), "--cdi-dir", str(tmp_path / "cdi"),
            "--log-root", str(tmp_path / "var-log")]


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Path]:
    if not SCRIPT.exists():
        pytest.skip(f"console script {SCRIPT} is not installed (run ./hack/setup.sh)")
    build_node(tmp_path / "node")
    etc = tmp_path / "etc" / "pcidp"
    etc.mkdir(parents=True)
    config = OPERATOR_CONFIG.read_text()
    (etc / NODE_NAME).write_text(config)
    (etc / "config.json").write_text(config)
    yield tmp_path


@pytest.mark.parametrize("flavour", list(ARGS))
def test_registers_with_upstream_daemonset_args(flavour: str, sandbox: Path) -> None:
    manifest_args, prefix = ARGS[flavour]
    vhost_res, kernel_res = f"{prefix}/dpdk_vhost", f"{prefix}/kernel"
    with KubeletSimulator(sandbox / "d", sandbox / "p.sock") as sim:
        proc = subprocess.Popen([str(SCRIPT), *_sandboxed(manifest_args, sandbox)],
                                stderr=subprocess.PIPE, text=True)
        try:
            assert sim.wait_until(lambda s: s.capacity(vhost_res) == 2
                                  and s.capacity(kernel_res) == 2, 20), sim.resources()
            resp = sim.allocate("default", "pod", "c0", vhost_res, 1).container_responses[0]
            proc.send_signal(signal.SIGTERM)
            _, stderr = proc.communicate(timeout=15)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr and "level=ERROR" not in stderr
    (device,) = json.loads(resp.envs[f"PCIDEVICE_{prefix.upper().replace('.', '_')}"
                                     "_DPDK_VHOST_INFO"])
    assert device in VHOST_DEVICES
    # needVhostNet: the nodes go to the runtime only if this host has both of them
    present = [p for p in ("/dev/vhost-net", "/dev/net/tun") if os.path.exists(p)]
    handed = [d.host_path for d in resp.devices]
    assert handed == (["/dev/vhost-net", "/dev/net/tun"] if len(present) == 2 else [])
    if len(present) < 2:
        assert "device nodes missing on the host, not handed to the runtime" in stderr
    if flavour != "operator":
        log_file = sandbox / "var-log" / "sriovdp" / "sriov-device-plugin.log"
        assert f"registered resource={vhost_res}" in log_file.read_text()
        assert f"registered resource={vhost_res}" in stderr  # --alsologtostderr
    if flavour == "upstream-cdi-daemonset":
        assert [c.name for c in resp.cdi_devices] == [f"{prefix}/net-pci={device}"]
