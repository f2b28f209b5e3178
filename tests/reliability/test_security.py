"""Security checks: hostile deviceIDs, file/socket modes, and no shell strings anywhere."""

from __future__ import annotations

import ast
import json
import stat
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, require_root
from tests.reliability.conftest import (
    AGENT,
    Node,
    cid,
    files_under,
    links,
    records_left,
    run_inprocess,
    write_artifact,
)

SOURCE_DIRS = ("sriov", "cni", "deviceplugin", "demo", "hack", "tests")


def _python_sources() -> list[Path]:
    out = []
    for d in SOURCE_DIRS:
        for p in (REPO / d).rglob("*"):
            if (
                p.is_file()
                and "__pycache__" not in p.parts
                and (
                    p.suffix == ".py"
                    or (p.read_bytes()[:64].startswith(b"#!") and b"python" in p.read_bytes()[:64])
                )
            ):
                out.append(p)
    return out


def _shell_violations(tree: ast.AST) -> list[str]:
    bad = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
        owner = f.value.id if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) else ""
        if (owner == "os" and name in ("system", "popen")) or name in (
            "getoutput",
            "getstatusoutput",
        ):
            bad.append(f"line {node.lineno}: {owner}.{name}")
        for kw in node.keywords:
            if kw.arg == "shell" and not (
                isinstance(kw.value, ast.Constant) and kw.value.value is False
            ):
                bad.append(f"line {node.lineno}: shell={ast.unparse(kw.value)}")
        if (
            owner == "subprocess"
            and name in ("run", "Popen", "call", "check_call", "check_output")
            and node.args
            and isinstance(node.args[0], ast.Constant | ast.JoinedStr | ast.BinOp)
        ):
            bad.append(f"line {node.lineno}: subprocess.{name} with a string command")
    return bad


def test_no_subprocess_takes_a_shell_string() -> None:
    """AST scan of every Python file: no shell=True, os.system, os.popen, string argv."""
    files = _python_sources()
    assert len(files) > 50, "the scan must see the code base"
    problems = {}
    for path in files:
        text = path.read_text(errors="replace")
        if path.suffix != ".py":  # a bash wrapper with an embedded python heredoc: skip bash
            continue
        found = _shell_violations(ast.parse(text, filename=str(path)))
        if found:
            problems[str(path.relative_to(REPO))] = found
    write_artifact("security_ast", {"files_scanned": len(files), "violations": problems})
    assert problems == {}


def test_the_scan_catches_what_it_looks_for() -> None:
    sample = (
        "import os, subprocess\nos.system('x')\nos.popen('x')\n"
        "subprocess.run('ls -l', shell=True)\nsubprocess.run(f'ip {x}')\nsubprocess.run(['ip'])\n"
    )
    assert len(_shell_violations(ast.parse(sample))) == 5


HOSTILE_IDS = (
    "0000:99:00.0",
    "../../etc",
    "/sys/bus/pci/devices/0000:3b:10.0",
    "0000:3b:10.0/../..",
    "..",
    "0000:3b:10.0\n",
    "0000:3b:10.0;id",
    "",
    " ",
    "$(id)",
)


def _pool_config(node: Node, selected: str) -> dict[str, str]:
    """A device plugin config whose one pool takes VFs ``selected`` (e.g. ``#0``) of the PF."""
    path = node.tmp / "pcidp-config.json"
    pool = {"resourceName": "st_pool", "selectors": {"pfNames": [f"{node.pf}{selected}"]}}
    path.write_text(json.dumps({"resourceList": [pool]}))
    return {"SRIOV_CNI_POOL_CONFIG": str(path)}


@pytest.mark.root
@pytest.mark.parametrize(
    "device_id", (*HOSTILE_IDS, "<PF>", "<PF with pools>", "<VF outside pools>", "/<VF path>")
)
def test_hostile_device_id_is_rejected_before_anything_is_touched(
    node: Node, pod: str, device_id: str
) -> None:
    extra_env: dict[str, str] = {}
    if device_id.startswith("<PF"):
        device_id = node.host().sysfs.inventory().pfs[0].address
        extra_env = _pool_config(node, "") if "pools" in device_id else {}
    elif device_id == "<VF outside pools>":  # a VF of this node, but not a managed one
        extra_env = _pool_config(node, "#0")
        device_id = node.kernel_vfs()[1].address
    elif device_id == "/<VF path>":
        extra_env = _pool_config(node, "")
        device_id = f"/sys/bus/pci/devices/{node.kernel_vfs()[0].address}"
    views = [node.vf_view(v.index) for v in node.kernel_vfs()]
    host_links, pod_links = links(), links(Path(pod).name)
    env = node.env("ADD", cid(), pod, **extra_env)
    reply = run_inprocess(env, json.dumps(node.conf(device_id)).encode())
    assert reply.rc != 0
    err = reply.out
    assert err is not None and err["code"] in (7, 100) and err["msg"], reply.stdout
    assert "Traceback" not in reply.stderr
    assert [node.vf_view(v.index) for v in node.kernel_vfs()] == views
    assert {n for n in links() if n.startswith(f"st-{node.tag}")} == {
        n for n in host_links if n.startswith(f"st-{node.tag}")
    }
    assert links(Path(pod).name) == pod_links
    assert files_under(node.state_dir) == [] and node.leases() == []


@pytest.mark.root
def test_a_vf_of_a_pool_is_accepted_and_released(node: Node, pod: str) -> None:
    vf = node.kernel_vfs()[0]
    before = node.vf_view(vf.index)
    pools = _pool_config(node, "#0")
    c, body = cid(), json.dumps(node.conf(vf.address)).encode()
    added = run_inprocess(node.env("ADD", c, pod, **pools), body)
    assert added.rc == 0, added.stdout
    assert "net1" in links(Path(pod).name)
    Path(pools["SRIOV_CNI_POOL_CONFIG"]).write_text("{broken")  # DEL must not depend on it
    deleted = run_inprocess(node.env("DEL", c, pod, **pools), body)
    assert deleted.rc == 0, deleted.stdout
    assert node.vf_view(vf.index) == before
    records = records_left(node.state_dir)
    assert records == [] and node.leases() == []  # the per-VF lock file is kept by design


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.root
def test_state_and_ipam_files_are_private(node: Node, pod: str) -> None:
    vf = node.kernel_vfs()[0]
    c = cid()
    reply = run_inprocess(node.env("ADD", c, pod), json.dumps(node.conf(vf.address)).encode())
    assert reply.rc == 0, reply.stdout
    try:
        found = {}
        for path in [node.state_dir, *node.state_dir.rglob("*")]:
            found[str(path.relative_to(node.tmp))] = oct(_mode(path))
            assert _mode(path) & 0o077 == 0, f"{path} is {oct(_mode(path))}"
        net = node.ipam_dir / f"st-{node.tag}"
        for path in [p for p in net.iterdir() if p.name[0].isdigit()]:
            found[str(path.relative_to(node.tmp))] = oct(_mode(path))
            assert _mode(path) & 0o077 == 0, f"{path} is {oct(_mode(path))}"
        write_artifact("security_modes_state", found)
    finally:
        run_inprocess(node.env("DEL", c, pod), json.dumps(node.conf(vf.address)).encode())


def test_agent_socket_is_owner_only(tmp_path: Path) -> None:
    sock = tmp_path / "run" / "agent.sock"
    proc = subprocess.Popen(
        [
            str(AGENT),
            "--socket",
            str(sock),
            "--state-dir",
            str(tmp_path / "s"),
            "--sysfs-root",
            str(tmp_path),
        ],
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while not sock.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
        assert sock.exists(), "agent did not create its socket"
        assert _mode(sock) & 0o077 == 0, f"agent socket is {oct(_mode(sock))}"
        assert _mode(sock.parent) & 0o022 == 0, f"socket dir is {oct(_mode(sock.parent))}"
    finally:
        proc.terminate()
        proc.wait(10)


def test_device_plugin_sockets_are_owner_only(tmp_path: Path) -> None:
    require_root()
    from tests.reliability.dp_harness import device_plugin_stack

    with device_plugin_stack(tmp_path) as stack:
        socks = [
            p for p in stack.plugin_dir.iterdir() if p.is_socket() and p.name != "kubelet.sock"
        ]
        assert socks, "the device plugin created no socket"
        for s in socks:
            assert _mode(s) & 0o077 == 0, f"{s.name} is {oct(_mode(s))}"


@pytest.fixture
def pod_resources(tmp_path: Path) -> Any:
    """A real pod-resources v1 gRPC server (the kubelet simulator's servicer); pods settable."""
    from concurrent import futures

    import grpc

    from deviceplugin.api.podresources.v1 import api_pb2 as pr
    from deviceplugin.api.podresources.v1 import api_pb2_grpc as pr_grpc
    from deviceplugin.simulator.podresources import PodResourcesServicer

    pods: list[Any] = []

    def set_pods(allocations: dict[str, list[str]]) -> None:
        pods[:] = [
            pr.PodResources(
                name=name,
                namespace="st",
                containers=[
                    pr.ContainerResources(
                        name="c",
                        devices=[
                            pr.ContainerDevices(resource_name="intel.com/st_net", device_ids=ids)
                        ],
                    )
                ],
            )
            for name, ids in allocations.items()
        ]

    sock = tmp_path / "pr.sock"
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    pr_grpc.add_PodResourcesListerServicer_to_server(
        PodResourcesServicer(lambda: pods, lambda: []), server
    )
    server.add_insecure_port(f"unix://{sock}")
    server.start()
    try:
        yield sock, set_pods
    finally:
        server.stop(grace=0).wait(5)


@pytest.mark.root
def test_a_pod_cannot_claim_a_vf_kubelet_allocated_to_another_pod(
    node: Node, pod: str, pod_resources: Any
) -> None:
    sock, set_pods = pod_resources
    vf0, vf1 = (v.address for v in node.kernel_vfs()[:2])
    set_pods({"a": [vf0]})
    views = [node.vf_view(v.index) for v in node.kernel_vfs()]

    def add(pod_name: str, pci: str, c: str) -> Any:
        env = node.env(
            "ADD",
            c,
            pod,
            ifname="net1" if pod_name == "a" else "net2",
            CNI_ARGS=f"IgnoreUnknown=1;K8S_POD_NAME={pod_name};K8S_POD_NAMESPACE=st",
        )
        return run_inprocess(env, json.dumps(node.conf(pci, podResourcesSocket=str(sock))).encode())

    stolen = add("b", vf0, cid())
    assert stolen.rc != 0 and stolen.out is not None and stolen.out["code"] == 101, stolen.stdout
    assert "st/a" in stolen.out["msg"]
    assert [node.vf_view(v.index) for v in node.kernel_vfs()] == views
    assert files_under(node.state_dir) == [] and node.leases() == []
    c = cid()
    own = add("a", vf0, c)  # the pod it was allocated to gets it
    assert own.rc == 0, own.stdout
    unallocated = add("b", vf1, cid())  # a VF kubelet gave to nobody: a static deviceID works
    assert unallocated.rc == 0, unallocated.stdout
    for state_file in list(node.state_dir.iterdir()):
        if state_file.is_file():
            rec = json.loads(state_file.read_text())
            run_inprocess(
                node.env("DEL", rec["containerID"], pod, ifname=rec["ifname"]),
                json.dumps(node.conf(rec["deviceID"])).encode(),
            )
    assert node.leases() == []
