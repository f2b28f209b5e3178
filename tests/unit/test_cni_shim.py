"""The stdlib-only shim, its wire format, the agent round trip, and import hygiene."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from cni.agent import CniAgent
from cni.main import Runtime
from cni.shim import call_agent, decode_env, encode_env

REPO = Path(__file__).resolve().parents[2]
PY = sys.executable


def _new_modules(stmt: str) -> list[str]:
    code = (
        "import sys; before=set(sys.modules); "
        + stmt
        + "; print('\\n'.join(sorted(set(sys.modules)-before)))"
    )
    out = subprocess.run([PY, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    return out.stdout.split()


def test_import_shim_loads_only_stdlib() -> None:
    loaded = _new_modules("import cni.shim")
    foreign = [
        m
        for m in loaded
        if m.split(".")[0] not in sys.stdlib_module_names and m.split(".")[0] != "cni"
    ]
    assert foreign == []
    assert [m for m in loaded if m.startswith("cni")] == ["cni", "cni.shim"]
    assert "json" not in loaded and "typing" not in loaded


def test_import_main_never_loads_grpc_kubernetes_pyroute2() -> None:
    loaded = {m.split(".")[0] for m in _new_modules("import cni.main")}
    assert loaded.isdisjoint({"grpc", "kubernetes", "pyroute2", "google", "deviceplugin", "pyudev"})


def test_env_encoding_forwards_only_cni_and_path() -> None:
    env = {"CNI_COMMAND": "ADD", "CNI_ARGS": "A=b=;c", "PATH": "/bin", "SECRET": "x", "CNI_X": "é"}
    assert decode_env(encode_env(env)) == {
        "CNI_COMMAND": "ADD",
        "CNI_ARGS": "A=b=;c",
        "PATH": "/bin",
        "CNI_X": "é",
    }


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[tuple[Path, Runtime]]:
    sock = tmp_path / "run" / "agent.sock"
    runtime = Runtime(sysfs_root=tmp_path, state_dir=tmp_path / "state")
    a = CniAgent(sock, runtime.plugin)
    thread = a.start()
    try:
        yield sock, runtime
    finally:
        a.stop()
        thread.join(10)
    assert not sock.exists()


def _env(tmp_path: Path, cmd: str, cid: str = "c1") -> dict[str, str]:
    return {
        "CNI_COMMAND": cmd,
        "CNI_CONTAINERID": cid,
        "CNI_NETNS": "/run/netns/st-none",
        "CNI_IFNAME": "net1",
        "CNI_PATH": "/usr/lib/cni",
        "SRIOV_CNI_STATE_DIR": str(tmp_path / "state"),
    }


def _conf(tmp_path: Path, version: str = "1.0.0", **extra: object) -> bytes:
    return json.dumps(
        {
            "cniVersion": version,
            "name": "st-net",
            "type": "sriov",
            "ipam": {
                "type": "host-local",
                "dataDir": str(tmp_path / "ipam"),
                "ranges": [[{"subnet": "10.7.0.0/24"}]],
            },
            **extra,
        }
    ).encode()


def _standalone(env: Mapping[str, str], stdin: bytes, tmp_path: Path) -> tuple[int, str]:
    from cni.main import run

    out = io.StringIO()
    status = run(
        env,
        stdin,
        out,
        io.StringIO(),
        runtime=Runtime(sysfs_root=tmp_path, state_dir=tmp_path / "state"),
    )
    return status, out.getvalue()


def test_agent_socket_is_private(agent: tuple[Path, Runtime]) -> None:
    sock, _ = agent
    assert oct(sock.stat().st_mode & 0o777) == "0o600"
    assert oct(sock.parent.stat().st_mode & 0o777) == "0o700"


@pytest.mark.parametrize(
    ("cmd", "version"),
    [
        ("VERSION", "0.4.0"),
        ("ADD", "1.0.0"),
        ("DEL", "1.0.0"),
        ("GC", "1.1.0"),
        ("STATUS", "1.1.0"),
        ("CHECK", "0.3.1"),
    ],
)
def test_agent_answers_like_standalone(
    tmp_path: Path, agent: tuple[Path, Runtime], cmd: str, version: str
) -> None:
    sock, _ = agent
    env, stdin = _env(tmp_path, cmd), _conf(tmp_path, version)
    status, out, err = call_agent(str(sock), env, stdin)
    assert (status, out.decode()) == _standalone(env, stdin, tmp_path)
    if cmd == "ADD":  # no deviceID, no fallback: a clear config error, one JSON document
        assert json.loads(out)["code"] == 7 and b"cid=c1" in err


def test_shim_process_uses_agent_and_falls_back_when_absent(
    tmp_path: Path, agent: tuple[Path, Runtime]
) -> None:
    sock, _ = agent
    env = {**os.environ, **_env(tmp_path, "VERSION"), "SRIOV_CNI_AGENT_SOCKET": str(sock)}
    via_agent = subprocess.run(
        [PY, "-m", "cni.shim"],
        input=b'{"cniVersion":"0.3.1"}',
        env=env,
        capture_output=True,
        check=False,
    )
    assert via_agent.returncode == 0 and json.loads(via_agent.stdout)["cniVersion"] == "0.3.1"
    env["SRIOV_CNI_AGENT_SOCKET"] = str(tmp_path / "nobody.sock")
    alone = subprocess.run(
        [PY, "-m", "cni.shim"],
        input=b'{"cniVersion":"0.3.1"}',
        env=env,
        capture_output=True,
        check=False,
    )
    assert alone.stdout == via_agent.stdout


def test_broken_connection_is_try_again_and_not_rerun(tmp_path: Path) -> None:
    path = tmp_path / "flaky.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)
    accepted: list[bytes] = []

    def accept_and_drop() -> None:
        conn, _ = server.accept()
        accepted.append(conn.recv(65536))
        conn.close()  # the agent "dies" mid-request

    t = threading.Thread(target=accept_and_drop)
    t.start()
    env = {**os.environ, **_env(tmp_path, "DEL"), "SRIOV_CNI_AGENT_SOCKET": str(path)}
    proc = subprocess.run(
        [PY, "-m", "cni.shim"],
        input=_conf(tmp_path, "0.4.0"),
        env=env,
        capture_output=True,
        check=False,
        timeout=60,
    )
    t.join(10)
    server.close()
    doc = json.loads(proc.stdout)
    assert proc.returncode == 1 and doc["code"] == 11 and doc["cniVersion"] == "0.4.0"
    assert len(accepted) == 1
    assert not (tmp_path / "state").exists()  # never ran in-process after the agent took it
