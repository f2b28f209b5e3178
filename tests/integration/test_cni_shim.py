"""The installed 'sriov' launcher against a real sriov-cni-agent process, and standalone."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
AGENT = REPO / ".venv/bin/sriov-cni-agent"
REFERENCE_DIR = Path("/usr/lib/cni")


def wait_for(predicate, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


@pytest.fixture
def launcher(tmp_path: Path) -> Path:
    subprocess.run(
        [str(REPO / "hack/install-cni"), str(tmp_path / "bin")], check=True, capture_output=True
    )
    path = tmp_path / "bin/sriov"  # the native shim; standalone: it execs bin/sriov-py
    assert path.read_bytes().startswith(b"\x7fELF")
    assert (tmp_path / "bin/sriov-py").read_text().startswith(f"#!{REPO}/.venv/bin/python3 -IS\n")
    return path


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen[bytes]]]:
    if not AGENT.exists():
        pytest.skip(f"{AGENT} missing: run hack/setup.sh to install the console scripts")
    sock = tmp_path / "run/cni-agent.sock"
    proc = subprocess.Popen(
        [
            str(AGENT),
            "--socket",
            str(sock),
            "--state-dir",
            str(tmp_path / "state"),
            "--sysfs-root",
            str(tmp_path / "sysroot"),
            "--log-level",
            "debug",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        assert wait_for(lambda: sock.exists() or proc.poll() is not None), "agent did not start"
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        yield sock, proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        if proc.stderr:
            proc.stderr.close()


def invoke(
    launcher: Path, sock: Path, cmd: str, body: dict, cid: str = "c1", state: Path | None = None
) -> subprocess.CompletedProcess[bytes]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "CNI_COMMAND": cmd,
        "CNI_CONTAINERID": cid,
        "CNI_NETNS": "/run/netns/st-none",
        "CNI_IFNAME": "net1",
        "CNI_PATH": str(REFERENCE_DIR),
        "SRIOV_CNI_AGENT_SOCKET": str(sock),
    }
    if state:
        env["SRIOV_CNI_STATE_DIR"] = str(state)
    return subprocess.run(
        [str(launcher)],
        input=json.dumps(body).encode(),
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )


def netconf(tmp_path: Path, version: str = "1.0.0") -> dict:
    return {
        "cniVersion": version,
        "name": "st-net",
        "type": "sriov",
        "ipam": {
            "type": "host-local",
            "dataDir": str(tmp_path / "ipam"),
            "ranges": [[{"subnet": "10.46.0.0/24"}]],
        },
    }


def test_launcher_through_agent_matches_standalone(
    tmp_path: Path, launcher: Path, agent: tuple[Path, subprocess.Popen[bytes]]
) -> None:
    sock, _ = agent
    absent = tmp_path / "absent.sock"
    for cmd, version in [
        ("VERSION", "0.4.0"),
        ("ADD", "1.0.0"),
        ("STATUS", "1.1.0"),
        ("GC", "1.0.0"),
    ]:
        via = invoke(launcher, sock, cmd, netconf(tmp_path, version))
        alone = invoke(launcher, absent, cmd, netconf(tmp_path, version), state=tmp_path / "state")
        assert (via.returncode, via.stdout) == (alone.returncode, alone.stdout), cmd
        if cmd == "STATUS":
            # no deviceID/fallback in this config and no SR-IOV PF on this host: not ready
            doc = json.loads(via.stdout)
            assert via.returncode == 1 and doc["code"] == 50, doc
        else:
            doc = json.loads(via.stdout)  # exactly one JSON document
            assert cmd != "GC" or doc["code"] == 1  # GC needs cniVersion >= 1.1.0
    assert (
        b"cid=c1" in invoke(launcher, sock, "ADD", netconf(tmp_path)).stderr
    )  # agent logs reach the runtime


def test_agent_del_releases_an_ip_the_reference_allocated(
    tmp_path: Path, launcher: Path, agent: tuple[Path, subprocess.Popen[bytes]]
) -> None:
    if not (REFERENCE_DIR / "host-local").is_file():
        pytest.skip("reference host-local not installed (apt containernetworking-plugins)")
    sock, _ = agent
    env = {
        "CNI_COMMAND": "ADD",
        "CNI_CONTAINERID": "c1",
        "CNI_NETNS": "/run/netns/st-none",
        "CNI_IFNAME": "net1",
        "CNI_PATH": str(REFERENCE_DIR),
    }
    ref = subprocess.run(
        [str(REFERENCE_DIR / "host-local")],
        input=json.dumps(netconf(tmp_path)).encode(),
        env=env,
        capture_output=True,
        check=True,
    )
    assert json.loads(ref.stdout)["ips"][0]["address"] == "10.46.0.2/24"
    done = invoke(launcher, sock, "DEL", netconf(tmp_path))
    assert (done.returncode, done.stdout) == (0, b"")
    assert not (tmp_path / "ipam/st-net/10.46.0.2").exists()


def test_sigterm_removes_socket(agent: tuple[Path, subprocess.Popen[bytes]]) -> None:
    sock, proc = agent
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    assert not sock.exists()
