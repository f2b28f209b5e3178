"""sriov-cni-agent --workers N: N pre-forked processes serve the one socket, are supervised,
and stop together (issue 13: a burst must not be bound to one Python process)."""

from __future__ import annotations

import concurrent.futures
import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require_root
from tests.deferred import settle
from tests.integration.test_cni_shim import AGENT, REFERENCE_DIR, launcher, wait_for

__all__ = ["launcher"]  # a fixture used below
N = 8


def sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True)


@pytest.fixture
def lan() -> Iterator[tuple[str, list[str]]]:
    """A host veth as the fallback master and N pod netns."""
    require_root()
    tag = os.urandom(2).hex()
    master, pods = f"st-wm{tag}", [f"st-wp{tag}{i}" for i in range(N)]
    sh("ip", "link", "add", master, "type", "veth", "peer", "name", f"st-wq{tag}")
    try:
        sh("ip", "link", "set", master, "up")
        for ns in pods:
            sh("ip", "netns", "add", ns)
        yield master, pods
    finally:
        for ns in pods:
            subprocess.run(["ip", "netns", "del", ns], check=False)
        subprocess.run(["ip", "link", "del", master], check=False)


def invoke(launcher: Path, sock: Path, cmd: str, conf: dict, cid: str, ns: str
           ) -> subprocess.CompletedProcess[bytes]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "CNI_COMMAND": cmd,
           "CNI_CONTAINERID": cid, "CNI_NETNS": f"/run/netns/{ns}", "CNI_IFNAME": "net1",
           "CNI_PATH": str(REFERENCE_DIR), "SRIOV_CNI_AGENT_SOCKET": str(sock)}
    return subprocess.run([str(launcher)], input=json.dumps(conf).encode(), env=env,
                          capture_output=True, timeout=60, check=False)


def netconf(tmp_path: Path, master: str) -> dict:
    return {"cniVersion": "1.0.0", "name": "st-net", "type": "sriov",
            "fallback": {"type": "macvlan", "master": master, "mode": "bridge"},
            "ipam": {"type": "host-local", "dataDir": str(tmp_path / "ipam"),
                     "ranges": [[{"subnet": "10.47.0.0/24"}]]}}


def children(pid: int) -> set[int]:
    out = Path(f"/proc/{pid}/task/{pid}/children")
    return {int(c) for c in out.read_text().split()} if out.exists() else set()


@pytest.fixture
def pool(tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen[bytes]]]:
    if not AGENT.exists():
        pytest.skip(f"{AGENT} missing: run hack/setup.sh to install the console scripts")
    sock = tmp_path / "run/cni-agent.sock"
    proc = subprocess.Popen(
        [str(AGENT), "--socket", str(sock), "--state-dir", str(tmp_path / "state"),
         "--sysfs-root", str(tmp_path / "sysroot"), "--workers", "2", "--log-level", "info"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: sock.exists() and len(children(proc.pid)) == 2), "no 2 workers"
        yield sock, proc
    finally:
        workers = children(proc.pid)
        if proc.poll() is None:
            proc.kill()  # the workers follow by PR_SET_PDEATHSIG
        proc.wait(10)
        assert wait_for(lambda: not any(Path(f"/proc/{w}").exists() for w in workers), 10)


def test_requests_at_once_are_served_by_the_worker_processes(
    tmp_path: Path, launcher: Path, pool: tuple[Path, subprocess.Popen[bytes]],
    lan: tuple[str, list[str]],
) -> None:
    sock, _ = pool
    master, pods = lan
    conf = netconf(tmp_path, master)

    def verb(cmd: str) -> list[subprocess.CompletedProcess[bytes]]:
        with concurrent.futures.ThreadPoolExecutor(N) as ex:
            return list(ex.map(lambda i: invoke(launcher, sock, cmd, conf, f"c{i}", pods[i]),
                               range(N)))

    adds = verb("ADD")
    assert [a.returncode for a in adds] == [0] * N, adds[0].stdout
    ips = {json.loads(a.stdout)["ips"][0]["address"] for a in adds}
    assert len(ips) == N  # one IPAM store under flock: no address handed out twice
    dels = verb("DEL")
    assert [d.returncode for d in dels] == [0] * N, dels[0].stdout
    assert not [p for p in (tmp_path / "ipam/st-net").iterdir() if p.name[0].isdigit()]
    settle(tmp_path / "state")  # the links' deletion runs after each DEL's answer (deferred)
    for ns in pods:
        out = subprocess.run(["ip", "-n", ns, "-o", "link"], capture_output=True, text=True)
        assert "net1" not in out.stdout


def test_a_dead_worker_is_replaced_and_sigterm_stops_all(
    tmp_path: Path, launcher: Path, pool: tuple[Path, subprocess.Popen[bytes]],
    lan: tuple[str, list[str]],
) -> None:
    sock, proc = pool
    first = children(proc.pid)
    victim = min(first)
    os.kill(victim, signal.SIGKILL)
    assert wait_for(lambda: len(children(proc.pid)) == 2 and victim not in children(proc.pid))
    assert sock.exists()  # a worker going away never removes the shared socket
    conf = netconf(tmp_path, lan[0])
    for i in range(4):  # whichever worker accepts
        assert invoke(launcher, sock, "ADD", conf, f"c{i}", lan[1][i]).returncode == 0
        assert invoke(launcher, sock, "DEL", conf, f"c{i}", lan[1][i]).returncode == 0
    workers = children(proc.pid)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    assert not sock.exists()
    assert not any(Path(f"/proc/{w}").exists() for w in workers)
