"""Input edge cases of issue 11 #10: trailing newlines in identifiers, undecodable env bytes.

Through the real ``sriov`` executable (standalone, and forwarded to a real agent process): one
spec error JSON with the right code, no traceback, nothing written to the state dir.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reliability.conftest import AGENT, SHIM, Node, cid, files_under, run_inprocess

pytestmark = pytest.mark.root


@pytest.fixture
def agent_socket(node: Node) -> Iterator[Path]:
    sock = node.tmp / "run" / "agent.sock"
    proc = subprocess.Popen(
        [str(AGENT), "--socket", str(sock), "--state-dir", str(node.state_dir),
         "--sysfs-root", str(node.root)],
        stdout=subprocess.DEVNULL, stderr=(node.tmp / "agent.log").open("wb"))
    try:
        deadline = time.monotonic() + 30
        while not sock.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert sock.exists(), (node.tmp / "agent.log").read_text()
        yield sock
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(20)


@pytest.mark.parametrize("verb", ["ADD", "DEL"])
def test_device_id_with_a_trailing_newline_is_refused_and_creates_no_lock(
    node: Node, pod: str, verb: str
) -> None:
    vf = node.kernel_vfs()[0]
    conf = node.conf(vf.address + "\n")
    reply = run_inprocess(node.env(verb, cid(), pod), json.dumps(conf).encode())
    assert reply.rc == 1 and reply.out is not None, reply.stdout
    assert reply.out["code"] == 7 and "deviceID" in reply.out["msg"], reply.out
    assert files_under(node.state_dir) == []  # no "<bdf>\n.lock" file


@pytest.mark.parametrize("through", ["standalone", "agent"])
def test_invalid_utf8_ifname_is_a_clean_code_4(
    node: Node, pod: str, through: str, request: pytest.FixtureRequest
) -> None:
    env = {k.encode(): v.encode() for k, v in node.env("ADD", cid(), pod).items()}
    env[b"CNI_IFNAME"] = b"net\xff"
    if through == "agent":
        env[b"SRIOV_CNI_AGENT_SOCKET"] = bytes(request.getfixturevalue("agent_socket"))
    conf = node.conf(node.kernel_vfs()[0].address)
    proc = subprocess.run([str(SHIM)], input=json.dumps(conf).encode(), env=env,
                          capture_output=True, timeout=60, check=False)
    assert proc.returncode == 1
    err = json.loads(proc.stdout)  # exactly one JSON document
    assert err["code"] == 4 and "CNI_IFNAME" in err["msg"], err
    assert b"Traceback" not in proc.stderr
    assert files_under(node.state_dir) == [] and node.leases() == []
