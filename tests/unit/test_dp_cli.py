"""The real sriov-device-plugin process: config errors, registration, SIGTERM cleanup."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from deviceplugin.simulator import KubeletSimulator
from tests.unit.test_dp_support import NETDEV_CONFIG, build_tree

RES = "intel.com/sriov_net"


def _argv(tmp_path: Path, config: Path) -> list[str]:
    return [sys.executable, "-m", "deviceplugin.cli", "--config", str(config),
            "--plugin-dir", str(tmp_path / "d"), "--sysfs-root", str(tmp_path / "host"),
            "--devinfo-dir", str(tmp_path / "devinfo"), "--log-level", "info"]


def test_invalid_initial_config_exits_nonzero_naming_the_field(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"resourceList": [{"resourceName": "bad name!",
                                                    "selectors": [{}]}]}))
    build_tree(tmp_path / "host")
    proc = subprocess.run(_argv(tmp_path, config), capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1
    assert "resourceList[0].resourceName" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_sigterm_stops_and_removes_sockets(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps(NETDEV_CONFIG))
    build_tree(tmp_path / "host")
    with KubeletSimulator(tmp_path / "d", tmp_path / "p.sock") as sim:
        proc = subprocess.Popen(_argv(tmp_path, config), stderr=subprocess.PIPE, text=True)
        try:
            assert sim.wait_until(lambda s: s.capacity(RES) == 8, 15), "plugin never registered"
            sockets = [p.name for p in (tmp_path / "d").iterdir() if p.name != "kubelet.sock"]
            assert len(sockets) == 1
            assert sockets[0].startswith("sriov-") and sockets[0].endswith(".sock")
            proc.send_signal(signal.SIGTERM)
            _, stderr = proc.communicate(timeout=15)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == 0, stderr
        assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["kubelet.sock"]
        assert "registered resource=intel.com/sriov_net" in stderr
        assert "Traceback" not in stderr
