"""Shims under test and fake agents for tests/unit/test_shim_contract.py.

``Shim`` runs an installed shim executable as a runtime would (fresh process, env + stdin).
``FakeAgent`` is a real unix socket server speaking docs/shim-protocol.md; ``uid`` makes it
listen as another user (the parent binds, the child calls listen(), so ``SO_PEERCRED`` shows
the child's uid, as with a real agent started by that user).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HOST_PYTHON = sys.base_prefix + "/bin/python3"


@dataclasses.dataclass(frozen=True)
class Run:
    status: int
    stdout: bytes
    stderr: bytes

    def one_json(self) -> dict:
        """The single JSON document on stdout (fails on zero, two or trailing garbage)."""
        text = self.stdout.decode()
        assert text.endswith("\n") and text.count("\n") == 1, f"not one line: {text!r}"
        return json.loads(text)


@dataclasses.dataclass(frozen=True)
class Shim:
    name: str
    path: Path

    def run(self, env: Mapping[str, str], stdin: bytes = b"", timeout: float = 60) -> Run:
        proc = subprocess.run([str(self.path)], input=stdin, env=dict(env), capture_output=True,
                              cwd="/", timeout=timeout, check=False)
        return Run(proc.returncode, proc.stdout, proc.stderr)


def build_native(out: Path, cc: str | None = None, cflags: str = "") -> str | None:
    """Build with hack/build-shim; returns a reason to skip, or None."""
    env = {**os.environ, "SHIM_CFLAGS": cflags}
    if cc:
        env["CC"] = cc
    elif not (shutil.which("musl-gcc") or shutil.which("gcc")):
        return "no C compiler (hack/setup.sh installs musl-tools and gcc)"
    proc = subprocess.run([str(REPO / "hack/build-shim"), str(out)], env=env,
                          capture_output=True, text=True, check=False)
    if proc.returncode:
        raise AssertionError(f"hack/build-shim failed:\n{proc.stderr}")
    return None


def install_python_shim(bin_dir: Path) -> Path:
    """The self-contained stdlib shim as DIR/sriov (what a node with python3 would run)."""
    subprocess.run([str(REPO / "hack/install-cni"), "--self-contained", "--python-shim",
                    "--python", HOST_PYTHON, str(bin_dir)], check=True, capture_output=True)
    return bin_dir / "sriov"


@dataclasses.dataclass
class Request:
    env: dict[str, bytes]
    stdin: bytes


def _recv_exact(conn: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = conn.recv(min(size - len(data), 1 << 20))
        if not chunk:
            raise ConnectionError("short read")
        data += chunk
    return bytes(data)


def read_request(conn: socket.socket) -> Request:
    env_raw = _recv_exact(conn, int.from_bytes(_recv_exact(conn, 4), "big"))
    stdin = _recv_exact(conn, int.from_bytes(_recv_exact(conn, 4), "big"))
    env = dict(item.partition(b"=")[::2] for item in env_raw.split(b"\0") if item)
    return Request({k.decode(): v for k, v in env.items()}, stdin)


def reply(status: int, err: bytes, out: bytes) -> bytes:
    return (status.to_bytes(4, "big", signed=True) + len(err).to_bytes(4, "big") + err
            + len(out).to_bytes(4, "big") + out)


class FakeAgent:
    """Serves one connection in a thread: records the request, then answers ``answer``
    (``None``: never answers, ``b""``: closes without a reply)."""

    def __init__(self, path: Path, answer: bytes | None = reply(0, b"", b"")) -> None:
        self.path, self.answer = path, answer
        self.requests: list[Request] = []
        self.connections = 0
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(str(path))
        self._server.listen(4)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self._server.accept()
        except OSError:
            return
        with conn:
            self.connections += 1
            try:
                self.requests.append(read_request(conn))
            except (OSError, ConnectionError):
                return
            if self.answer is None:
                self._done.wait(60)
            elif self.answer:
                conn.sendall(self.answer)

    def close(self) -> None:
        self._done.set()
        self._server.close()
        self._thread.join(10)


def _forged_child(sock: socket.socket, uid: int, report: int) -> None:
    """Listen as ``uid``; answer a forged success to anyone; report bytes received."""
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
    sock.listen(4)
    os.write(report, b"listening\n")
    total = 0
    forged = b'{"cniVersion":"1.0.0","interfaces":[{"name":"forged"}]}\n'
    while True:
        conn, _ = sock.accept()
        while chunk := conn.recv(65536):
            total += len(chunk)
        os.write(report, f"{total}\n".encode())
        with contextlib.suppress(OSError):
            conn.sendall(reply(0, b"", forged))
        conn.close()


class ForgedAgent:
    """An agent listening as ``uid`` (a forked child; the parent binds, since ``uid`` may not
    be able to write the directory), answering a forged success to anyone."""

    def __init__(self, path: Path, uid: int) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(str(path))
        os.chmod(path, 0o666)
        read_end, write_end = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:  # child: never returns into pytest
            try:
                os.close(read_end)
                _forged_child(sock, uid, write_end)
            finally:
                os._exit(0)
        sock.close()
        os.close(write_end)
        self._report = os.fdopen(read_end)
        assert self._report.readline() == "listening\n"

    def received(self) -> int:
        """Request bytes received over all connections so far; stops the agent."""
        import signal

        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        lines = self._report.read().split()
        self._report.close()
        return int(lines[-1]) if lines else 0
