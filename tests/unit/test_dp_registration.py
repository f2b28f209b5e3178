"""Registration: retry with backoff when kubelet is late or refuses, and plugin-watcher mode."""

from __future__ import annotations

import threading
from pathlib import Path

import grpc

from deviceplugin.api.pluginregistration import api_pb2 as reg
from deviceplugin.api.pluginregistration import api_pb2_grpc as reg_grpc
from deviceplugin.retry import Backoff, RetryTimer
from tests.unit.test_dp_support import NETDEV_CONFIG, build_tree, eventually, running_plugin

RES = "intel.com/sriov_net"
DEADLINE = 5.0
FAST = Backoff(initial_s=0.05, maximum_s=0.2)


def test_backoff_doubles_from_1s_to_30s() -> None:
    assert [Backoff().delay(n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]


def test_retry_timer_runs_action_after_delay_until_success() -> None:
    calls: list[str] = []
    done = threading.Event()

    def action(key: str) -> None:
        calls.append(key)
        if len(calls) < 3:
            timer.failed(key)
        else:
            timer.succeeded(key)
            done.set()

    timer = RetryTimer(action, FAST)
    timer.start()
    try:
        assert timer.failed("a") == 0.05
        assert done.wait(DEADLINE)
        assert calls == ["a", "a", "a"] and timer.pending() == {}
    finally:
        timer.stop()


def test_refused_register_is_retried_on_a_timer(tmp_path: Path) -> None:
    build_tree(tmp_path / "host")
    with running_plugin(tmp_path, NETDEV_CONFIG, backoff=FAST, refuse_registrations=2) as dp:
        assert dp.sim.wait_until(lambda s: s.capacity(RES) == 8, DEADLINE)
        assert dp.sim.registrations[RES] == 1
        assert dp.metrics.registration_failures.labels(RES)._value.get() == 2
        assert eventually(lambda: dp.manager.servers[RES].registered)
        assert dp.manager.retry.pending() == {}


def test_kubelet_started_late_gets_registered(tmp_path: Path) -> None:
    build_tree(tmp_path / "host")
    with running_plugin(tmp_path, NETDEV_CONFIG, start_kubelet=False) as dp:
        server = dp.manager.servers[RES]
        assert not server.registered
        assert RES in dp.manager.retry.pending()  # kubelet.sock absent: retry scheduled
        dp.sim.start()  # wipes the plugin dir and creates kubelet.sock, like kubelet
        assert dp.sim.wait_until(lambda s: s.capacity(RES) == 8, 1.0 + 1.0)
        assert eventually(lambda: dp.manager.servers[RES].registered)
        assert dp.manager.retry.pending() == {}


def _get_info(socket: Path) -> reg.PluginInfo:
    with grpc.insecure_channel(f"unix://{socket}") as ch:
        return reg_grpc.RegistrationStub(ch).GetInfo(reg.InfoRequest(), timeout=5)


def test_plugin_watcher_mode_registers_through_plugins_registry(tmp_path: Path) -> None:
    build_tree(tmp_path / "host")
    with running_plugin(tmp_path, NETDEV_CONFIG, plugin_watcher=True) as dp:
        assert dp.sim.wait_until(lambda s: s.capacity(RES) == 8, DEADLINE)
        assert dp.plugins_registry is not None
        server = dp.manager.servers[RES]
        sockets = [p for p in dp.plugins_registry.iterdir()]
        assert len(sockets) == 1
        info = _get_info(sockets[0])
        assert (info.type, info.name, list(info.supported_versions)) == (
            "DevicePlugin", RES, ["v1beta1"])
        assert info.endpoint == str(dp.plugin_dir / server.socket_name)
        assert eventually(lambda: server.registered)
        assert dp.sim.plugin_watcher.statuses == [(sockets[0].name, True, "")]
        assert dp.metrics.watcher_status.labels(RES, "true")._value.get() == 1
        resp = dp.sim.allocate("ns", "p", "c", RES, 1).container_responses[0]
        assert resp.envs["PCIDEVICE_INTEL_COM_SRIOV_NET"]
        # kubelet restart wipes the device-plugin dir: new DevicePlugin socket, new
        # registration socket, discovered again; the old one is gone
        dp.sim.restart()
        assert dp.sim.wait_until(lambda s: s.registrations.get(RES) == 2
                                 and s.capacity(RES) == 8, 1.0 + 1.0)
        new = [p for p in dp.plugins_registry.iterdir()]
        assert len(new) == 1 and new[0] != sockets[0]
        assert _get_info(new[0]).endpoint == str(
            dp.plugin_dir / dp.manager.servers[RES].socket_name)
    assert list(dp.plugins_registry.iterdir()) == []


def test_cli_plugins_registry_flag_registers_and_sigterm_removes_sockets(tmp_path: Path) -> None:
    import json
    import signal
    import subprocess
    import sys

    from deviceplugin.simulator import KubeletSimulator

    build_tree(tmp_path / "host")
    config = tmp_path / "config.json"
    config.write_text(json.dumps(NETDEV_CONFIG))
    registry_dir = tmp_path / "pr"
    argv = [sys.executable, "-m", "deviceplugin.cli", "--config", str(config),
            "--plugin-dir", str(tmp_path / "d"), "--sysfs-root", str(tmp_path / "host"),
            "--devinfo-dir", str(tmp_path / "devinfo"), "--plugins-registry", str(registry_dir)]
    with KubeletSimulator(tmp_path / "d", tmp_path / "p.sock",
                          plugins_registry=registry_dir) as sim:
        proc = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True)
        try:
            assert sim.wait_until(lambda s: s.capacity(RES) == 8, 15), "never registered"
            assert eventually(lambda: [st[1] for st in sim.plugin_watcher.statuses] == [True])
            proc.send_signal(signal.SIGTERM)
            _, stderr = proc.communicate(timeout=15)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 0, stderr
    assert list(registry_dir.iterdir()) == []
    assert "registered via plugin watcher resource=intel.com/sriov_net" in stderr
    assert "kubelet.sock" not in stderr  # no Register calls in plugin-watcher mode
