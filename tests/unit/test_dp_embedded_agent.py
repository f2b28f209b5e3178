"""``sriov-device-plugin --cni-agent-socket``: the DaemonSet's single process also serves the
CNI shim (the node's /opt/cni/bin/sriov forwards to it)."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

from cni.shim import call_agent
from deviceplugin.simulator import KubeletSimulator
from tests.unit.test_dp_cli import RES, _argv
from tests.unit.test_dp_support import NETDEV_CONFIG, build_tree


def _wait_for(path: Path, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return True
        time.sleep(0.05)
    return False


def test_device_plugin_serves_the_cni_shim_and_removes_the_socket(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps(NETDEV_CONFIG))
    build_tree(tmp_path / "host")
    agent_socket = tmp_path / "agent" / "cni.sock"
    argv = [*_argv(tmp_path, config), "--cni-agent-socket", str(agent_socket)]
    with KubeletSimulator(tmp_path / "d", tmp_path / "p.sock") as sim:
        proc = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True)
        try:
            assert sim.wait_until(lambda s: s.capacity(RES) == 8, 15), "plugin never registered"
            assert _wait_for(agent_socket, 30), "CNI agent socket never appeared"
            assert agent_socket.stat().st_mode & 0o777 == 0o600
            status, out, _ = call_agent(str(agent_socket), {"CNI_COMMAND": "VERSION"},
                                        b'{"cniVersion": "1.0.0"}')
            assert status == 0
            assert "1.1.0" in json.loads(out)["supportedVersions"]
            proc.send_signal(signal.SIGTERM)
            _, stderr = proc.communicate(timeout=15)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 0, stderr
    assert not agent_socket.exists()
    assert "Traceback" not in stderr
