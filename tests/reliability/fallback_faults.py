"""Harness for killing the fallback mode mid-ADD (tests/reliability and tests/vm).

- :func:`fallback_master`: a host veth ``st-fm*`` (up) with its peer ``st-fp*``: the master of
  the macvlan/ipvlan (and of the 8021q parent), removed at teardown with everything on it.
- :class:`FallbackRig`: netconf, CNI env, state/IPAM dirs under ``tmp_path``; ``kill_add`` runs
  the real ``sriov`` executable (standalone) with ``SRIOV_CNI_FAULT=<step>:kill``; ``recover``
  sends the runtime's DEL, or a GC whose valid list does not hold the attachment;
  ``leftovers`` lists what a user would find behind.
- :func:`agent`: a real ``sriov-cni-agent`` on a temp socket (optionally with a fault), ended by
  its own handle.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cni.fallback import ADD_STEPS
from tests.reliability.conftest import (
    AGENT,
    BASE_PATH,
    CNI_BIN,
    Reply,
    links,
    records_left,
    run_shim,
    settle,
)

RECOVERIES = ("DEL", "GC")
"""How the crashed attachment is cleaned: the runtime's DEL, or a GC that does not list it."""
NO_VLAN_STEPS = tuple(s for s in ADD_STEPS if s != "vlan-parent")
"""The fault points an ADD without ``fallback.vlan`` passes."""


def after(steps: tuple[str, ...]) -> dict[str, str]:
    """Killing before step X == crashing right after the step before it (first: ``start``)."""
    return dict(zip(steps, ("start", *steps[:-1]), strict=True))


def _ip(*argv: str) -> None:
    subprocess.run(["ip", *argv], check=False, capture_output=True)


@contextlib.contextmanager
def fallback_master() -> Iterator[str]:
    tag = secrets.token_hex(3)
    master, peer = f"st-fm{tag}", f"st-fp{tag}"
    subprocess.run(
        ["ip", "link", "add", master, "type", "veth", "peer", "name", peer],
        check=True,
        capture_output=True,
    )
    try:
        _ip("link", "set", master, "up")
        _ip("link", "set", peer, "up")
        yield master
    finally:
        _ip("link", "del", master)  # takes the peer and any VLAN sub-interface on it along


def vlan_links_on(master: str) -> list[str]:
    """8021q sub-interfaces whose lower device is ``master`` (``ip -d link show type vlan``)."""
    out = subprocess.run(
        ["ip", "-o", "link", "show", "type", "vlan"], capture_output=True, text=True, check=False
    ).stdout
    names = (line.split(": ")[1] for line in out.splitlines() if ": " in line)
    return sorted(name.split("@")[0] for name in names if name.endswith(f"@{master}"))


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class FallbackRig:
    tmp: Path
    master: str
    kind: str = "macvlan"
    vlan: int | None = None

    @property
    def network(self) -> str:
        return f"st-fb-{self.master[5:]}"

    @property
    def state_dir(self) -> Path:
        return self.tmp / "state"

    @property
    def ipam_dir(self) -> Path:
        return self.tmp / "ipam"

    @property
    def vlan_parent(self) -> str | None:
        return f"{self.master}.{self.vlan}" if self.vlan is not None else None

    @property
    def steps(self) -> tuple[str, ...]:
        return ADD_STEPS if self.vlan is not None else NO_VLAN_STEPS

    def conf(self) -> dict[str, Any]:
        fallback: dict[str, Any] = {"type": self.kind, "master": self.master}
        if self.vlan is not None:
            fallback["vlan"] = self.vlan
        return {
            "cniVersion": "1.1.0",
            "name": self.network,
            "type": "sriov",
            "ipam": {
                "type": "host-local",
                "dataDir": str(self.ipam_dir),
                "ranges": [[{"subnet": "10.78.0.0/16"}]],
            },
            "fallback": fallback,
        }

    def env(self, command: str, cid: str, pod: str, **extra: str) -> dict[str, str]:
        return {
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": cid,
            "CNI_NETNS": pod,
            "CNI_IFNAME": "net1",
            "CNI_PATH": CNI_BIN,
            "PATH": BASE_PATH,
            "SRIOV_CNI_STATE_DIR": str(self.state_dir),
            "SRIOV_CNI_AGENT_SOCKET": str(self.tmp / "no-agent.sock"),
            **extra,
        }

    def stdin(self, **extra: Any) -> bytes:
        return json.dumps({**self.conf(), **extra}).encode()

    def kill_add(self, cid: str, pod: str, step: str, **extra: str) -> Reply:
        """ADD with ``SRIOV_CNI_FAULT=<step>:kill`` (read by standalone; an agent reads its own)."""
        env = self.env("ADD", cid, pod, SRIOV_CNI_FAULT=f"{step}:kill", **extra)
        return run_shim(env, self.stdin())

    def recover(self, how: str, cid: str, pod: str, **extra: str) -> Reply:
        """The runtime's DEL, or a GC with an empty valid list (the attachment is not in it)."""
        if how == "DEL":
            return run_shim(self.env("DEL", cid, pod, **extra), self.stdin())
        gc = self.stdin(**{"cni.dev/valid-attachments": []})
        return run_shim(self.env("GC", "", "", **extra), gc)

    def records(self) -> list[str]:
        """Attachment records and VLAN markers (lock files are not state)."""
        return records_left(self.state_dir)

    def leases(self) -> list[str]:
        net = self.ipam_dir / self.network
        return sorted(p.name for p in net.iterdir() if p.name[0].isdigit()) if net.is_dir() else []

    def leftovers(self, pod: str) -> list[str]:
        settle(self.state_dir)  # deferred DEL tails (agent): a user's next step waits too
        problems = []
        in_pod = links(Path(pod).name) - {"lo"}
        if in_pod:
            problems.append(f"links left in the pod: {sorted(in_pod)}")
        if self.records():
            problems.append(f"state files left: {self.records()}")
        if self.leases():
            problems.append(f"IPAM leases left: {self.leases()}")
        if vlan_links_on(self.master):
            problems.append(f"8021q links left: {vlan_links_on(self.master)}")
        return problems


def outcome(reply: Reply, problems: list[str], how: str) -> str:
    if reply.rc == 0 and not problems:
        return "clean"
    return f"{how} rc={reply.rc} {reply.stdout.strip()[:200]}; " + "; ".join(problems)


@contextlib.contextmanager
def agent(
    rig: FallbackRig, sock: Path, fault: str | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """A real agent serving ``sock``; stopped (SIGTERM, then SIGKILL) unless it already died."""
    env = {"PATH": BASE_PATH, **({"SRIOV_CNI_FAULT": fault} if fault else {})}
    proc = subprocess.Popen(
        [
            str(AGENT),
            "--socket",
            str(sock),
            "--state-dir",
            str(rig.state_dir),
            "--log-level",
            "warning",
            "--workers",  # a fault's kill hits the process serving the request: the agent itself
            "1",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
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
        sock.unlink(missing_ok=True)  # a killed agent leaves its socket, as after a node crash
