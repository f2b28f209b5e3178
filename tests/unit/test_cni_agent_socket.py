"""The agent's end of the socket (cni.agent_socket): one agent per path, directory and peer
checks, oversized frames answered with a permanent error; and skel's single-document rule
when the timeout fires right after the result is written."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cni import skel
from cni.agent import CniAgent
from cni.agent_socket import AgentSocketError
from cni.errors import CniCode
from cni.main import Runtime
from cni.protocol import Result
from cni.shim import FRAME_LIMIT, call_agent, frame
from tests.unit.shim_fakes import REPO

NOBODY = 65534
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="other uids need root")


def _agent(path: Path, tmp_path: Path, **kw: object) -> CniAgent:
    runtime = Runtime(sysfs_root=tmp_path, state_dir=tmp_path / "state")
    return CniAgent(path, runtime.plugin, **kw)  # type: ignore[arg-type]


def _env(cmd: str = "DEL") -> dict[str, str]:
    return {"CNI_COMMAND": cmd, "CNI_CONTAINERID": "c1", "CNI_NETNS": "/run/netns/none",
            "CNI_IFNAME": "net1", "CNI_PATH": "/usr/lib/cni"}


CONF = json.dumps({"cniVersion": "1.0.0", "name": "n", "type": "sriov"}).encode()


@pytest.fixture
def winner(tmp_path: Path) -> Iterator[CniAgent]:
    agent = _agent(tmp_path / "run/agent.sock", tmp_path)
    thread = agent.start()
    yield agent
    agent.stop()
    thread.join(10)


def test_a_second_agent_fails_and_leaves_the_first_ones_socket(winner: CniAgent,
                                                                tmp_path: Path) -> None:
    loser = _agent(winner.socket_path, tmp_path)
    with pytest.raises(AgentSocketError, match="another agent"):
        loser.serve_forever()  # bind fails; its cleanup must not unlink the winner's socket
    loser.close()
    assert winner.socket_path.exists()
    status, out, _ = call_agent(str(winner.socket_path), _env("GC"), CONF)
    assert status == 1 and json.loads(out)["code"] == CniCode.INCOMPATIBLE_VERSION


def test_the_lock_decides_even_when_the_socket_file_is_gone(winner: CniAgent,
                                                           tmp_path: Path) -> None:
    """Two agents racing past the stale-socket check: the lock, not the file, decides."""
    winner.socket_path.unlink()  # what the loser's "stale socket" unlink did before the lock
    loser = _agent(winner.socket_path, tmp_path)
    with pytest.raises(AgentSocketError, match=r"pid \d+"):
        loser.bind()
    assert not winner.socket_path.exists()  # the loser did not bind a second listener


def test_two_agent_processes_started_together_exactly_one_listens(tmp_path: Path) -> None:
    sock = tmp_path / "run/agent.sock"
    argv = [str(REPO / ".venv/bin/sriov-cni-agent"), "--socket", str(sock), "--state-dir",
            str(tmp_path / "state"), "--sysfs-root", str(tmp_path)]
    procs = [subprocess.Popen(argv, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        deadline = time.monotonic() + 60
        while all(p.poll() is None for p in procs) and time.monotonic() < deadline:
            time.sleep(0.05)
        (loser,) = [p for p in procs if p.poll() is not None]
        (alive,) = [p for p in procs if p is not loser]
        assert loser.returncode == 1
        assert "another agent" in loser.stderr.read()  # type: ignore[union-attr]
        _, out, _ = call_agent(str(sock), _env("GC"), CONF)
        assert json.loads(out)["code"] == CniCode.INCOMPATIBLE_VERSION
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                p.wait(10)
    assert alive.returncode == 0 and not sock.exists()


def test_missing_socket_dir_is_created_private(tmp_path: Path) -> None:
    agent = _agent(tmp_path / "new/agent.sock", tmp_path)
    agent.bind()
    try:
        assert (tmp_path / "new").stat().st_mode & 0o777 == 0o700
    finally:
        agent.close()
    assert not (tmp_path / "new/agent.sock").exists()


@pytest.mark.parametrize("mode", [0o777, 0o1777, 0o770, 0o722])
def test_socket_dir_writable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, mode)
    with pytest.raises(AgentSocketError, match="writable"):
        _agent(shared / "agent.sock", tmp_path).bind()
    assert os.listdir(shared) == []


@needs_root
def test_socket_dir_of_another_uid_is_refused(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o755)
    os.chown(theirs, NOBODY, NOBODY)
    with pytest.raises(AgentSocketError, match=f"uid {NOBODY}"):
        _agent(theirs / "agent.sock", tmp_path).bind()


def test_existing_private_dir_is_accepted(tmp_path: Path) -> None:
    own = tmp_path / "own"
    own.mkdir(mode=0o755)
    agent = _agent(own / "agent.sock", tmp_path)
    agent.bind()
    agent.close()


def _ask_as(uid: int, path: Path) -> bytes:
    """Send one request as ``uid`` (forked child); returns the raw reply (b"" if dropped)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(30)
                s.connect(str(path))
                s.sendall(frame(b"CNI_COMMAND=VERSION") + frame(b""))
                s.shutdown(socket.SHUT_WR)
                while chunk := s.recv(65536):
                    os.write(write_end, chunk)
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as r:
        data = r.read()
    os.waitpid(pid, 0)
    return data


@needs_root
@pytest.mark.parametrize("allowed", [False, True])
def test_client_of_another_uid_is_refused_unless_configured(tmp_path: Path,
                                                           allowed: bool) -> None:
    import shutil
    import tempfile

    # a path the other uid can reach (pytest's tmp dirs are root-only), a socket it may
    # write: only the SO_PEERCRED check stands in its way
    reachable = Path(tempfile.mkdtemp(prefix="st-agent-peer-", dir="/run"))
    os.chmod(reachable, 0o755)
    agent = _agent(reachable / "agent.sock", tmp_path, client_uid=NOBODY if allowed else None)
    thread = agent.start()
    try:
        os.chmod(agent.socket_path, 0o666)
        raw = _ask_as(NOBODY, agent.socket_path)
    finally:
        agent.stop()
        thread.join(10)
        shutil.rmtree(reachable)
    if allowed:
        assert json.loads(raw[12:])["supportedVersions"]
    else:
        assert raw == b""


@pytest.mark.parametrize(("env_size", "stdin_size", "code"),
                         [(FRAME_LIMIT + 1, 0, CniCode.INVALID_ENV),
                          (10, FRAME_LIMIT + 1, CniCode.INVALID_CONFIG)])
def test_oversized_frame_gets_a_permanent_error(winner: CniAgent, env_size: int, stdin_size: int,
                                                code: CniCode) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(30)
        s.connect(str(winner.socket_path))
        head = env_size.to_bytes(4, "big")
        if env_size <= FRAME_LIMIT:
            head += b"CNI_COMMAND=ADD"[:env_size].ljust(env_size) + stdin_size.to_bytes(4, "big")
        s.sendall(head)  # only the header: the agent answers without reading a body
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    status = int.from_bytes(data[:4], "big", signed=True)
    doc = json.loads(data[12 + int.from_bytes(data[4:8], "big"):])
    assert status == 1 and doc["code"] == code and "exceeds the limit" in doc["details"]


class _AddOk:
    def add(self, args: object, conf: object) -> Result:
        return Result(cni_version="1.0.0")


class _SlowStdout(io.StringIO):
    """Writing the result takes longer than the whole-invocation timeout."""

    def write(self, text: str) -> int:
        time.sleep(0.3)
        return super().write(text)


def test_timeout_while_writing_the_result_prints_one_document() -> None:
    out = _SlowStdout()
    status = skel.dispatch({**_env("ADD"), "CNI_NETNS_OVERRIDE": "1"}, CONF, out, io.StringIO(),
                           _AddOk(), timeout=0.1)  # type: ignore[arg-type]
    assert status == 0
    assert json.loads(out.getvalue()) == {"cniVersion": "1.0.0"}  # exactly one document
