"""``sriov-device-plugin --cni-agent-socket``: the DaemonSet's single process also serves the
CNI shim (the node's /opt/cni/bin/sriov forwards to it)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from cni.shim import call_agent
from deviceplugin.cli import _start_cni_agent, parse_args
from deviceplugin.simulator import KubeletSimulator
from tests.unit.test_cni_agent_socket import NOBODY, _ask_as, needs_root
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


@needs_root
@pytest.mark.parametrize("allowed", [False, True])
def test_embedded_agent_takes_the_agents_client_uid(tmp_path: Path, allowed: bool) -> None:
    """``--cni-agent-client-uid`` is the agent's ``--client-uid``: that uid's requests are
    answered, anyone else's (but root's) dropped."""
    reachable = Path(tempfile.mkdtemp(prefix="st-dp-agent-", dir="/run"))  # nobody can reach it
    os.chmod(reachable, 0o755)
    socket_path = reachable / "cni.sock"
    argv = ["--cni-agent-socket", str(socket_path), "--sysfs-root", str(tmp_path)]
    args = parse_args([*argv, "--cni-agent-client-uid", str(NOBODY)] if allowed else argv)
    stop = threading.Event()
    thread = _start_cni_agent(args.cni_agent_socket, stop, args.sysfs_root, tmp_path / "none",
                              args.cni_agent_client_uid)
    try:
        assert _wait_for(socket_path, 30), "CNI agent socket never appeared"
        os.chmod(socket_path, 0o666)  # only the SO_PEERCRED check stands in nobody's way
        raw = _ask_as(NOBODY, socket_path)
    finally:
        stop.set()
        thread.join(10)
        shutil.rmtree(reachable)
    assert not thread.is_alive()
    if allowed:
        assert json.loads(raw[12:])["supportedVersions"]
    else:
        assert raw == b""


@pytest.mark.parametrize(("argv", "message"), [
    (["--cni-agent-client-uid", "65534"], "needs --cni-agent-socket"),
    (["--cni-agent-socket", "/run/x.sock", "--cni-agent-client-uid", "-1"], "not a uid"),
])
def test_client_uid_flag_errors(argv: list[str], message: str,
                                capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        parse_args(argv)
    assert info.value.code == 2 and message in capsys.readouterr().err
