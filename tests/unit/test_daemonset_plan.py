"""The DaemonSet harness's reading of the manifest (pure): what kubelet would run, or a clear
error for what the harness does not map. The run: tests/integration/test_image_daemonset.py."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from demo.daemonset_plan import ManifestError, Node, ProbeKind, json_patch, plan_pod
from demo.daemonset_podman import k8s_argv, run_argv
from demo.node import NodeLayout, configmaps, daemonset, shim_launcher

ROOT = Path("/tmp/st-node")


def _node(**kw: Any) -> Node:
    return Node(root=ROOT, name="worker-1", pod_name="sriov-device-plugin-abcde", pod_uid="u1",
                configmaps=configmaps(), **kw)


def _plan(ds: dict[str, Any] | None = None) -> Any:
    return plan_pod(daemonset() if ds is None else ds, _node())


def _main(plan: Any) -> Any:
    (c,) = [c for c in plan.containers if c.name == "sriov-device-plugin"]
    return c


def test_the_manifest_maps_to_init_containers_then_the_plugin() -> None:
    plan = _plan()
    assert [c.name for c in plan.init_containers] == ["install-cni", "node-labels"]
    assert plan.host_network and plan.host_pid
    main = _main(plan)
    assert main.privileged and main.memory_limit == 256 * 2**20 and main.cpu_limit == 1.0
    assert ("NODE_NAME", "worker-1") in main.env
    assert "--sysfs-root=/run/sriov-emu" in (main.args or ()), "the emulated-host patch applies"


def test_field_ref_is_expanded_in_the_command() -> None:
    (labels,) = [c for c in _plan().init_containers if c.name == "node-labels"]
    assert k8s_argv(labels, ["sriov-device-plugin"], ["--config=x"]) == [
        "sriovctl", "labels", "--node", "worker-1", "--sysfs-root", "/run/sriov-emu"]


def test_host_paths_go_under_the_node_root_except_the_kernels_and_runtimes() -> None:
    mounts = {m.target: m for m in _main(_plan()).mounts}
    plugins = mounts["/var/lib/kubelet/device-plugins"]
    assert plugins.source == ROOT / "var/lib/kubelet/device-plugins"
    assert mounts["/opt/cni/bin"].source == ROOT / "opt/cni/bin"
    assert mounts["/opt/cni/bin"].read_only
    assert mounts["/sys"].source == Path("/sys") and mounts["/dev"].source == Path("/dev")
    assert mounts["/var/run/netns"].source == Path("/var/run/netns")
    assert mounts["/var/run/netns"].propagation == "rslave", "HostToContainer"
    config = mounts["/etc/pcidp"]
    assert config.read_only and config.source.parts[-2:] == ("kubernetes.io~configmap", "config")


def test_config_map_items_are_written_as_kubelet_does() -> None:
    (path, text), = _plan().files
    assert path.name == "config.json" and '"resourceList"' in text


def test_probes_resolve_the_named_port() -> None:
    main = _main(_plan())
    assert main.liveness is not None and main.readiness is not None
    assert main.liveness.kind is ProbeKind.HTTP_GET and main.liveness.port == 9808
    assert main.liveness.initial_delay_s == 10 and main.liveness.failure_threshold == 3


def test_kubernetes_command_and_args_rules() -> None:
    main = _main(_plan())
    argv = k8s_argv(main, ["ignored-entrypoint"], ["ignored-cmd"])
    assert argv[0] == "sriov-device-plugin" and "ignored-cmd" not in argv
    only_args = _main(_plan(json_patch(daemonset(), [
        {"op": "remove", "path": "/spec/template/spec/containers/0/command"}])))
    assert k8s_argv(only_args, ["ep"], ["cmd"])[:2] == ["ep", "--config=/etc/pcidp/config.json"]


def test_podman_argv_carries_the_manifests_settings() -> None:
    plan = _plan()
    argv = run_argv(plan, _main(plan), ["sriov-device-plugin", "--x"], "c1", detach=True)
    assert argv[argv.index("--network"):argv.index("--network") + 2] == ["--network", "host"]
    assert "--privileged" in argv
    assert argv[argv.index("--pid"):argv.index("--pid") + 2] == ["--pid", "host"]
    assert f"{ROOT}/var/lib/cni/sriov:/var/lib/cni/sriov:rw,rprivate" in argv
    assert argv[-3:] == ['["sriov-device-plugin"]', "ghcr.io/sriov-k8s/sriov-k8s:0.1.0", "--x"]


@pytest.mark.parametrize(("path", "value", "words"), [
    ("/spec/template/spec/hostIPC", True, "hostIPC"),
    ("/spec/template/spec/containers/0/securityContext/capabilities", {"add": ["NET_ADMIN"]},
     "capabilities"),
    ("/spec/template/spec/containers/0/volumeMounts/0/subPath", "x", "subPath"),
    ("/spec/template/spec/containers/0/env/-",
     {"name": "T", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}, "fieldRef"),
    ("/spec/template/spec/volumes/-", {"name": "n", "nfs": {"server": "s", "path": "/"}}, "nfs"),
    ("/spec/template/spec/containers/0/lifecycle", {"preStop": {}}, "lifecycle"),
])
def test_unsupported_features_are_refused_by_name(path: str, value: Any, words: str) -> None:
    ds = json_patch(daemonset(), [{"op": "add", "path": path, "value": value}])
    with pytest.raises(ManifestError, match=words):
        _plan(ds)


def test_a_patch_whose_test_fails_is_refused() -> None:
    with pytest.raises(ManifestError, match="expected"):
        json_patch(daemonset(patches=()), [
            {"op": "test", "path": "/spec/template/spec/containers/0/name", "value": "other"}])


def test_set_image_replaces_every_container_image() -> None:
    ds = daemonset(image="ghcr.io/sriov-k8s/sriov-k8s:0.1.1")
    plan = _plan(ds)
    assert {c.image for c in plan.init_containers + plan.containers} == {
        "ghcr.io/sriov-k8s/sriov-k8s:0.1.1"}


def test_a_missing_config_map_is_an_error() -> None:
    with pytest.raises(ManifestError, match="sriovdp-config"):
        plan_pod(daemonset(), Node(root=ROOT, name="n", pod_name="p", pod_uid="u"))


def test_manifest_is_not_modified() -> None:
    ds = daemonset()
    before = copy.deepcopy(ds)
    _plan(ds)
    assert ds == before


def test_shim_launcher_quotes_paths() -> None:
    text = shim_launcher(Path("/tmp/a b/sriov"), Path("/tmp/x/cni.sock"))
    assert "exec '/tmp/a b/sriov' \"$@\"" in text
    socket = NodeLayout(workdir=Path("/tmp/w")).agent_socket
    assert socket == Path("/tmp/w/n/run/sriov-k8s/cni-agent.sock")


# ---------------------------------------------------------------- probes against real servers

def _runner() -> Any:
    from demo.daemonset_podman import PodRunner, Store

    return PodRunner(_plan(), Store(root=Path("/nonexistent"), runroot=Path("/nonexistent"),
                                    driver="vfs"))


def test_tcp_and_http_probes_against_real_listeners() -> None:
    import http.server
    import socket
    import threading

    from demo.daemonset_plan import Probe

    runner, main = _runner(), _main(_plan())
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        assert runner.probe(main, Probe(kind=ProbeKind.TCP_SOCKET, port=port)).ok
        assert runner.probe(main, Probe(kind=ProbeKind.HTTP_GET, port=port, path="/")).ok
        missing = runner.probe(main, Probe(kind=ProbeKind.HTTP_GET, port=port, path="/st-none"))
        assert not missing.ok and "404" in missing.detail
    finally:
        server.shutdown()
        server.server_close()
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    assert not runner.probe(main, Probe(kind=ProbeKind.TCP_SOCKET, port=closed)).ok


def test_grpc_probe_speaks_the_health_protocol() -> None:
    from concurrent import futures

    import grpc

    from demo.daemonset_plan import Probe

    replies = {b"": b"\x08\x01", b"\x0a\x03bad": b"\x08\x02"}  # SERVING / NOT_SERVING

    def check(request: bytes, context: object) -> bytes:
        return replies[request]

    handler = grpc.method_handlers_generic_handler("grpc.health.v1.Health", {
        "Check": grpc.unary_unary_rpc_method_handler(check, request_deserializer=lambda b: b,
                                                     response_serializer=lambda b: b)})
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2), handlers=(handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        runner, main = _runner(), _main(_plan())
        assert runner.probe(main, Probe(kind=ProbeKind.GRPC, port=port)).ok
        assert not runner.probe(main, Probe(kind=ProbeKind.GRPC, port=port, service="bad")).ok
    finally:
        server.stop(0)
