"""Harness for the DEL/state hardening tests (issue 11 items 1, 2, 3, 7, 8).

A :class:`Rig` drives the real ``sriov`` executable on an emulated SR-IOV host, standalone or
through a real ``sriov-cni-agent`` (``via``), in VF or fallback mode, and lists what a user
would find behind (:meth:`Rig.leftovers`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.reliability.conftest import (
    AGENT,
    BASE_PATH,
    SHIM,
    Node,
    Reply,
    links,
    records_left,
    run_shim,
    settle,
)

VIAS = ("standalone", "agent")
MODES = ("vf", "fallback")


@dataclasses.dataclass
class Rig:
    node: Node
    mode: str
    via: str
    sock: Path

    def conf(self, **extra: Any) -> dict[str, Any]:
        if self.mode == "vf":
            return self.node.conf(self.node.kernel_vfs()[0].address, **extra)
        return self.node.conf(fallback=True, **extra)

    def env(self, command: str, cid: str, netns: str, ifname: str = "net1",
            **extra: str) -> dict[str, str]:
        env = self.node.env(command, cid, netns, ifname, **extra)
        if self.via == "agent":
            env["SRIOV_CNI_AGENT_SOCKET"] = str(self.sock)
        return env

    def call(self, command: str, cid: str, netns: str, conf: dict[str, Any] | None = None,
             ifname: str = "net1", stdin: bytes | None = None, **extra: str) -> Reply:
        body = stdin if stdin is not None else json.dumps(conf or self.conf()).encode()
        return run_shim(self.env(command, cid, netns, ifname, **extra), body)

    def start(self, command: str, cid: str, netns: str, conf: dict[str, Any] | None = None,
              **extra: str) -> subprocess.Popen[bytes]:
        """The shim in the background (for forced interleavings); stdin already sent."""
        proc = subprocess.Popen([str(SHIM)], env=self.env(command, cid, netns, **extra),
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(conf or self.conf()).encode())
        proc.stdin.close()
        proc.stdin = None  # sent: communicate() must not flush it again
        return proc

    def leftovers(self, pod: str, vf_before: dict[str, Any] | None) -> list[str]:
        settle(self.node.state_dir)  # deferred DEL tails (agent): a user's next step waits too
        problems = []
        if self.mode == "vf" and vf_before is not None:
            now = self.node.vf_view(0)
            if now != vf_before:
                problems.append(f"VF differs: {now} != {vf_before}")
        in_pod = links(Path(pod).name) - {"lo"}
        if in_pod:
            problems.append(f"links left in the pod: {sorted(in_pod)}")
        if records_left(self.node.state_dir):
            problems.append(f"state files left: {records_left(self.node.state_dir)}")
        if self.node.leases():
            problems.append(f"IPAM leases left: {self.node.leases()}")
        return problems


def finish(proc: subprocess.Popen[bytes], timeout: float = 90) -> Reply:
    out, err = proc.communicate(timeout=timeout)
    return Reply(proc.returncode, out.decode(errors="replace"), err.decode(errors="replace"))


@contextlib.contextmanager
def maybe_agent(node: Node, via: str, sock: Path,
                fault: str | None = None) -> Iterator[subprocess.Popen[bytes] | None]:
    """A real agent on ``sock`` when ``via == "agent"`` (stopped at the end), else nothing."""
    if via != "agent":
        yield None
        return
    env = {"PATH": BASE_PATH, **({"SRIOV_CNI_FAULT": fault} if fault else {})}
    proc = subprocess.Popen(
        [str(AGENT), "--socket", str(sock), "--state-dir", str(node.state_dir),
         "--sysfs-root", str(node.root), "--log-level", "warning",
         "--workers", "1"],  # the tests look at the open files of the process serving the verb
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not sock.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"agent did not start (rc={proc.poll()})")
            time.sleep(0.02)  # polling to a deadline for the socket to appear
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        sock.unlink(missing_ok=True)


def wait_until(what: str, predicate: Any, timeout: float = 30) -> None:
    """Poll ``predicate`` to a deadline (synchronisation, not a timed assertion)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.02)


def open_count(pid: int, path: Path) -> int:
    """How many fds of process ``pid`` (all threads) hold ``path`` open (lock holders/waiters)."""
    count = 0
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                count += os.readlink(fd) == str(path)
    return count


def has_open(pid: int, path: Path) -> bool:
    """Whether process ``pid`` (any thread) has ``path`` open: it waits on that lock file."""
    return open_count(pid, path) > 0


def stopped(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] == "T"


@contextlib.contextmanager
def flock_held(path: Path) -> Iterator[None]:
    """Hold ``path``'s ``flock`` from the test process (another verb holds the VF)."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def host_process() -> Iterator[int]:
    """A process in the host netns: its ``/proc/<pid>/ns/net`` is what a reused PID gives."""
    proc = subprocess.Popen(["sleep", "300"])
    try:
        yield proc.pid
    finally:
        proc.kill()
        proc.wait(5)


@contextlib.contextmanager
def host_link(name: str) -> Iterator[str]:
    """A host veth named ``name`` (what a hostile DEL must not touch)."""
    subprocess.run(["ip", "link", "add", name, "type", "veth", "peer", "name", name + "p"],
                   check=True, capture_output=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "link", "del", name], check=False, capture_output=True)


def link_line(name: str) -> str:
    """``ip -o link show`` of one host link without counters (name, MAC, MTU, state)."""
    return subprocess.run(["ip", "-o", "link", "show", "dev", name], capture_output=True,
                          text=True, check=False).stdout
