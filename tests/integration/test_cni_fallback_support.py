"""Fixtures and helpers for the fallback/DHCP CNI tests (imported by test_cni_fallback*.py).

- ``lan``: a host veth ``st-m-*`` (the fallback master, up) whose peer sits in a "LAN"
  netns ``st-lan-*``; both removed at teardown.
- :class:`Cni`: builds fallback netconfs (state and host-local data dirs under ``tmp_path``)
  and runs verbs in-process through ``cni.main.run`` exactly as the binary would.
- :func:`agent_and_shim`: a real ``sriov-cni-agent`` process on a temp socket plus the
  installed shim launcher (``hack/install-cni``); the agent is ended by its PID.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, require_root, unique

CNI_BIN = Path("/usr/lib/cni")
VENV_PYTHON = REPO / ".venv/bin/python"


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), check=check, capture_output=True, text=True)


def ns_path(name: str) -> str:
    return f"/var/run/netns/{name}"


def link_json(netns: str, ifname: str) -> dict[str, Any] | None:
    proc = sh("ip", "-n", netns, "-j", "-d", "addr", "show", "dev", ifname, check=False)
    if proc.returncode != 0:
        return None
    return json.loads(proc.stdout)[0]


def ns_links(netns: str) -> list[str]:
    return [entry["ifname"] for entry in json.loads(sh("ip", "-n", netns, "-j", "link").stdout)]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Lan:
    master: str
    peer: str
    netns: str


@pytest.fixture
def lan() -> Iterator[Lan]:
    require_root()
    lan_ns, master, peer = unique("st-lan-"), unique("st-m-"), unique("st-p-")
    sh("ip", "netns", "add", lan_ns)
    try:
        sh("ip", "link", "add", master, "type", "veth", "peer", "name", peer, "netns", lan_ns)
        sh("ip", "link", "set", master, "up")
        sh("ip", "-n", lan_ns, "link", "set", peer, "up")
        sh("ip", "-n", lan_ns, "link", "set", "lo", "up")
        yield Lan(master=master, peer=peer, netns=lan_ns)
    finally:
        sh("ip", "link", "del", master, check=False)
        sh("ip", "netns", "del", lan_ns, check=False)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Reply:
    rc: int
    out: dict[str, Any] | None
    err: str

    @property
    def error(self) -> dict[str, Any]:
        assert self.rc != 0 and self.out is not None, (
            f"expected an error, got rc={self.rc} {self.out}"
        )
        return self.out


class Cni:
    def __init__(self, tmp_path: Path, master: str) -> None:
        self.tmp = tmp_path
        self.master = master
        self.state_dir = tmp_path / "state"
        self.ipam_dir = tmp_path / "ipam"

    def conf(self, version: str = "1.0.0", *, ipam: dict[str, Any] | bool | None = True,
             **fallback: Any) -> dict[str, Any]:
        fb = {"type": "macvlan", "master": self.master, **fallback}
        conf: dict[str, Any] = {"cniVersion": version, "name": "st-fbnet", "type": "sriov",
                                "stateDir": str(self.state_dir), "fallback": fb}
        if ipam is True:
            conf["ipam"] = {
                "type": "host-local",
                "subnet": "10.199.0.0/16",
                "dataDir": str(self.ipam_dir),
                "routes": [{"dst": "198.51.100.0/24"}],
            }
        elif isinstance(ipam, dict):
            conf["ipam"] = ipam
        return conf

    def env(self, command: str, netns: str, ifname: str = "net1", cid: str = "st-c1",
            cni_args: str = "", extra: dict[str, str] | None = None) -> dict[str, str]:
        return {"CNI_COMMAND": command, "CNI_CONTAINERID": cid, "CNI_NETNS": netns,
                "CNI_IFNAME": ifname, "CNI_PATH": str(CNI_BIN), "CNI_ARGS": cni_args,
                "SRIOV_CNI_STATE_DIR": str(self.state_dir),  # the netconf's stateDir must match
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"), **(extra or {})}

    def call(self, command: str, conf: dict[str, Any], netns: str, **kw: Any) -> Reply:
        from cni.main import run

        out, err = io.StringIO(), io.StringIO()
        rc = run(self.env(command, netns, **kw), json.dumps(conf).encode(), out, err)
        text = out.getvalue().strip()
        return Reply(rc=rc, out=json.loads(text) if text else None, err=err.getvalue())

    def ok(
        self, command: str, conf: dict[str, Any], netns: str, **kw: Any
    ) -> dict[str, Any] | None:
        reply = self.call(command, conf, netns, **kw)
        assert reply.rc == 0, f"{command} failed: {reply.out}\n{reply.err[-3000:]}"
        return reply.out

    def leases(self, network: str = "st-fbnet") -> list[str]:
        d = self.ipam_dir / network
        if not d.is_dir():
            return []
        return sorted(p.name for p in d.iterdir() if p.name[0].isdigit() or ":" in p.name)

    def records(self) -> list[str]:
        if not self.state_dir.is_dir():
            return []
        return sorted(
            p.name for p in self.state_dir.iterdir() if p.is_file() and not p.name.startswith(".")
        )


def exec_plugin(binary: Path | str, env: dict[str, str], conf: dict[str, Any],
                timeout: float = 60) -> Reply:
    """Run a CNI binary exactly as a runtime does: env + config on stdin, result on stdout."""
    proc = subprocess.run([str(binary)], input=json.dumps(conf).encode(), env=env,
                          capture_output=True, timeout=timeout, check=False)
    text = proc.stdout.decode().strip()
    return Reply(
        rc=proc.returncode, out=json.loads(text) if text else None, err=proc.stderr.decode()
    )


def wait_for(predicate: Any, what: str, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")


def _connectable(path: Path) -> bool:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(str(path))
        return True
    except OSError:
        return False
    finally:
        s.close()


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class AgentShim:
    shim: Path
    socket: Path
    proc: subprocess.Popen[bytes]

    def env(self, base: dict[str, str]) -> dict[str, str]:
        return {**base, "SRIOV_CNI_AGENT_SOCKET": str(self.socket)}


@pytest.fixture
def agent_and_shim(tmp_path: Path) -> Iterator[AgentShim]:
    require_root()
    bin_dir = tmp_path / "bin"
    sh(str(REPO / "hack/install-cni"), str(bin_dir))
    sock = tmp_path / "run" / "agent.sock"
    log_file = (tmp_path / "agent.log").open("wb")
    proc = subprocess.Popen([str(VENV_PYTHON), "-m", "cni.agent", "--socket", str(sock),
                             "--state-dir", str(tmp_path / "state")], stdout=log_file,
                            stderr=subprocess.STDOUT, cwd=REPO)
    try:
        wait_for(lambda: proc.poll() is not None or _connectable(sock), "the CNI agent socket")
        assert proc.poll() is None, (tmp_path / "agent.log").read_text()
        yield AgentShim(shim=bin_dir / "sriov", socket=sock, proc=proc)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
        log_file.close()
