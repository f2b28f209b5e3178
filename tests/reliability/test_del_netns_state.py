"""Issue 11 items 1, 2 and 7 through the real shim, standalone and via the agent.

1. DEL never changes the host netns: a ``CNI_NETNS`` that is the plugin's own netns is refused
   (``/proc/<host pid>/ns/net``, e.g. a reused PID), and a different netns than the recorded one
   is ignored: host links and other pods stay untouched, the attachment stays recoverable.
2. A full state disk (a real small tmpfs) or an I/O error fails ADD with code 105 and rolls
   everything back; nothing half-written is left that DEL would misread.
7. DEL cleans up from its own record even when ``prevResult`` is unusable.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require_root
from tests.reliability.conftest import Node, cid, del_netns, links, new_netns
from tests.reliability.del_harness import (
    MODES,
    VIAS,
    Rig,
    host_link,
    host_process,
    link_line,
    maybe_agent,
)

pytestmark = pytest.mark.root


@pytest.fixture(params=[(m, v) for m in MODES for v in VIAS], ids=lambda p: f"{p[0]}-{p[1]}")
def rig(request: pytest.FixtureRequest, node: Node) -> Iterator[Rig]:
    mode, via = request.param
    r = Rig(node, mode, via, node.tmp / "agent.sock")
    with maybe_agent(node, via, r.sock):
        yield r


def test_del_with_the_host_netns_leaves_the_host_alone(rig: Rig, pod: str) -> None:
    """Was: fallback DEL deleted the host link named CNI_IFNAME; VF DEL renamed a host link to
    the VF's name and gave it the VF's MAC, and dropped the record (VF lost in the pod)."""
    vf_before = rig.node.vf_view(0)
    name = f"st-h{secrets.token_hex(3)}"
    c = cid()
    with host_link(name), host_process() as pid:
        assert rig.call("ADD", c, pod, ifname=name).rc == 0
        host_before = link_line(name)
        hostile = rig.call("DEL", c, f"/proc/{pid}/ns/net", ifname=name)
        assert hostile.rc == 1 and hostile.out and hostile.out["code"] == 8, hostile.stdout
        assert "own network namespace" in hostile.out["msg"]
        assert link_line(name) == host_before  # same name, MAC, state: untouched
        assert name in links(Path(pod).name)  # the pod's attachment is still there...
        assert rig.call("DEL", c, pod, ifname=name).rc == 0  # ...and recoverable
        assert link_line(name) == host_before
    assert rig.leftovers(pod, vf_before) == []


def test_del_trusts_the_recorded_netns_over_another_pods(rig: Rig, pod: str) -> None:
    """A DEL naming another pod's netns acts in the attachment's own netns (by nsfs identity)."""
    vf_before = rig.node.vf_view(0)
    c = cid()
    other = new_netns()
    try:
        other_path = f"/var/run/netns/{other}"
        # the other pod has an interface of the same name that is not ours
        subprocess.run(["ip", "-n", other, "link", "add", "net1", "type", "veth", "peer", "name",
                        "st-peer"], check=True, capture_output=True)
        assert rig.call("ADD", c, pod).rc == 0
        reply = rig.call("DEL", c, other_path)
        assert reply.rc == 0, reply.stdout
        assert links(other) == {"lo", "net1", "st-peer"}  # the other pod untouched
    finally:
        del_netns(other)
    assert rig.leftovers(pod, vf_before) == []


def test_del_ignores_an_unusable_prev_result(rig: Rig, pod: str) -> None:
    """Was: code 7 for a malformed prevResult and 999 for ``"mtu": 1e999``; DEL never ran."""
    vf_before = rig.node.vf_view(0)
    for prev in (b'{"cniVersion": "1.1.0", "interfaces": [{"name": "net1", "mtu": 1e999}]}',
                 b'{"cniVersion": "1.1.0", "ips": "not-a-list"}'):
        c = cid()
        assert rig.call("ADD", c, pod).rc == 0
        body = json.dumps(rig.conf(prevResult="@PREV@")).encode().replace(b'"@PREV@"', prev)
        reply = rig.call("DEL", c, pod, stdin=body)
        assert reply.rc == 0, reply.stdout
        if rig.via == "standalone":  # the agent logs to its own stderr
            assert "ignoring an unusable prevResult" in reply.stderr
        assert rig.leftovers(pod, vf_before) == []


# ----------------------------------------------------------------- item 2: state writes
def _small_tmpfs(directory: Path) -> Iterator[Path]:
    """``directory`` on a real 256 KiB tmpfs (filled up by the test)."""
    require_root()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k,mode=0700", "st-full",
                    str(directory)], check=True, capture_output=True)
    try:
        yield directory
    finally:
        subprocess.run(["umount", "-l", str(directory)], check=False, capture_output=True)


@pytest.fixture
def small_state(node: Node) -> Iterator[Path]:
    yield from _small_tmpfs(node.state_dir)


@pytest.fixture
def small_ipam(node: Node) -> Iterator[Path]:
    yield from _small_tmpfs(node.ipam_dir)


def _fill(directory: Path, leave: int) -> Path:
    """Fill the filesystem of ``directory`` but ``leave`` bytes (a page-rounded, real ENOSPC)."""
    st = os.statvfs(directory)
    free = st.f_bavail * st.f_frsize
    filler = directory / "st-filler"
    with open(filler, "wb") as f:
        f.write(b"\0" * max(0, free - leave))
    return filler


def test_full_state_disk_fails_add_and_rolls_back(rig: Rig, pod: str, small_state: Path) -> None:
    """Was: a short write renamed a truncated record into place; ADD returned 0 and the later
    DEL returned 0 with the VF left in the pod."""
    vf_before = rig.node.vf_view(0)
    c = cid()
    assert rig.call("ADD", c, pod).rc == 0  # the state dir's layout exists (locks, owner dir)
    assert rig.call("DEL", c, pod).rc == 0
    filler = _fill(small_state, 4096)  # one page left; the records below need two
    padded = rig.conf(**{"st-padding": "x" * 6000})  # stored with the record (its netconf)
    add = rig.call("ADD", cid(), pod, conf=padded)
    assert add.rc == 1 and add.out and add.out["code"] == 105, add.stdout
    assert "cannot write state file" in add.out["msg"]
    filler.unlink()
    assert rig.leftovers(pod, vf_before) == [], "ADD did not roll back everything"


@pytest.mark.parametrize("step", ["write-record-pending", "write-owner", "write-record-complete"])
def test_io_error_on_a_state_write_fails_add_and_rolls_back(node: Node, pod: str,
                                                            step: str) -> None:
    """EIO injected at each record write of a VF ADD (standalone; SRIOV_CNI_FAULT)."""
    rig = Rig(node, "vf", "standalone", node.tmp / "agent.sock")
    vf_before = node.vf_view(0)
    add = rig.call("ADD", cid(), pod, SRIOV_CNI_FAULT=f"{step}:eio")
    assert add.rc == 1 and add.out and add.out["code"] == 105, add.stdout
    assert "I/O error" in add.out.get("details", "") or "injected" in add.out.get("details", "")
    assert rig.leftovers(pod, vf_before) == []


def test_full_lease_disk_fails_add_and_rolls_back(node: Node, pod: str, small_ipam: Path) -> None:
    """A host-local lease cut short (container ID truncated) would never be released by DEL."""
    rig = Rig(node, "vf", "standalone", node.tmp / "agent.sock")
    vf_before = node.vf_view(0)
    c = cid()
    assert rig.call("ADD", c, pod).rc == 0  # the network's lease dir exists
    assert rig.call("DEL", c, pod).rc == 0
    filler = _fill(small_ipam, 0)  # a new lease file gets created, its content not written
    add = rig.call("ADD", cid(), pod)
    assert add.rc == 1 and add.out and add.out["code"] == 104, add.stdout
    assert "cannot write a lease" in add.out["msg"]
    filler.unlink()
    assert rig.leftovers(pod, vf_before) == []
