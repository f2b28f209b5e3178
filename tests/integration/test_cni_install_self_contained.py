"""The shims the DaemonSet installs on nodes: the static native ``sriov`` (needs nothing) and the
stdlib-only Python ``sriov-py`` (no venv, no package)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _install(tmp_path: Path, python: str = sys.base_prefix + "/bin/python3") -> Path:
    bin_dir = tmp_path / "bin"
    subprocess.run([str(REPO / "hack/install-cni"), "--self-contained", "--python", python,
                    str(bin_dir)], check=True, capture_output=True)
    return bin_dir / "sriov"


def _no_agent_add(shim: Path, tmp_path: Path) -> subprocess.CompletedProcess[bytes]:
    env = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_NETNS": "/var/run/netns/x",
           "CNI_IFNAME": "net1", "CNI_PATH": "/usr/lib/cni",
           "SRIOV_CNI_AGENT_SOCKET": str(tmp_path / "no-agent.sock")}
    conf = json.dumps({"cniVersion": "1.0.0", "name": "n", "type": "sriov"}).encode()
    # run from an empty cwd with a clean env: the package is not importable
    return subprocess.run([str(shim)], input=conf, env=env, cwd=tmp_path, capture_output=True)


def test_native_shim_is_static_and_answers_try_again_without_python(tmp_path: Path) -> None:
    """A node without python3 (Flatcar, Talos...): sriov-py cannot start, sriov still answers."""
    shim = _install(tmp_path, python="/nonexistent/python3")
    data = shim.read_bytes()
    assert data.startswith(b"\x7fELF") and b"ld-linux" not in data and b"libc.so" not in data
    proc = _no_agent_add(shim, tmp_path)
    err = json.loads(proc.stdout)
    assert proc.returncode == 1 and err["code"] == 11 and err["cniVersion"] == "1.0.0"
    assert "not running" in err["msg"]
    version = subprocess.run([str(shim)], input=b'{"cniVersion":"0.4.0"}', capture_output=True,
                             env={"CNI_COMMAND": "VERSION"}, cwd=tmp_path)
    assert version.returncode == 0 and json.loads(version.stdout)["cniVersion"] == "0.4.0"


def test_self_contained_shim_needs_nothing_from_the_checkout(tmp_path: Path) -> None:
    _install(tmp_path)
    shim = tmp_path / "bin/sriov-py"
    text = shim.read_text()
    assert text.startswith("#!") and ".venv" not in text.splitlines()[0]
    assert str(REPO) not in text, "the node copy must not point into the checkout"
    for exe in (shim, tmp_path / "bin/sriov"):  # native: execs sriov-py, which answers
        proc = _no_agent_add(exe, tmp_path)
        assert proc.returncode == 1
        err = json.loads(proc.stdout)
        assert err["code"] == 11 and err["cniVersion"] == "1.0.0"
        assert "not running" in err["msg"]
        assert b"Traceback" not in proc.stderr


def test_self_contained_shim_forwards_to_an_agent(tmp_path: Path) -> None:
    """A fake agent on a real socket answers; the shim prints its stdout and exit status."""
    import socket
    import threading

    shim = _install(tmp_path).with_name("sriov-py")  # the native one: tests/unit/test_shim_contract
    path = str(tmp_path / "agent.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    reply = b'{"cniVersion":"1.0.0","interfaces":[]}\n'

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            while conn.recv(65536):
                pass  # read the request until the shim shuts down its write side
            conn.sendall((0).to_bytes(4, "big") + (0).to_bytes(4, "big")
                         + len(reply).to_bytes(4, "big") + reply)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    env = {"CNI_COMMAND": "ADD", "SRIOV_CNI_AGENT_SOCKET": path, "PATH": os.environ["PATH"]}
    proc = subprocess.run([str(shim)], input=b"{}", env=env, cwd=tmp_path, capture_output=True,
                          timeout=30)
    t.join(5)
    server.close()
    assert proc.returncode == 0 and proc.stdout == reply
