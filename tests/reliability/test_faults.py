"""Fault injection: SIGKILL the CNI (standalone) or the agent at each step of a VF-mode ADD.

``SRIOV_CNI_FAULT=<step>:kill`` (cni/faults.py) kills the process just before ``<step>`` runs,
i.e. right after the previous step. After the crash, the runtime's DEL (standalone, or a fresh
agent) - or instead a GC whose ``cni.dev/valid-attachments`` is empty - must leave nothing
behind: the VF back in the host with its original name, MAC, MTU and PF-side settings; no IPAM
lease; no attachment or owner record; no 8021q sub-interface. GC can do it at every step
because ADD saves a pending record (with the network name) before its first change.
The fallback mode's kill points: test_faults_fallback.py.
Also: SIGKILL the device plugin mid-ListAndWatch -> the kubelet sees the stream end; a restarted
plugin re-registers and the devices come back.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cni.vf import ADD_STEPS
from tests.conftest import require_root
from tests.reliability.conftest import (
    AGENT,
    FAULT_MATRIX,
    FULL,
    Node,
    Reply,
    cid,
    links,
    records_left,
    run_shim,
    vlan_links,
)

pytestmark = pytest.mark.root
AFTER = dict(zip(ADD_STEPS, ("start", *ADD_STEPS[:-1]), strict=True))
"""Killing before step X == crashing right after the step before it."""
AGENT_STEPS = ADD_STEPS if FULL else ("move", "ipam")


def _conf(node: Node, pci: str) -> dict[str, object]:
    return node.conf(
        pci,
        vlan=100,
        vlanQoS=2,
        mac="02:aa:bb:cc:dd:01",
        mtu=1400,
        spoofchk="off",
        trust="on",
        min_tx_rate=0,
        max_tx_rate=100,
    )


def _start_agent(node: Node, sock: Path, fault: str | None) -> subprocess.Popen[bytes]:
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    if fault:
        env["SRIOV_CNI_FAULT"] = fault
    proc = subprocess.Popen(
        [
            str(AGENT),
            "--socket",
            str(sock),
            "--state-dir",
            str(node.state_dir),
            "--sysfs-root",
            str(node.root),
            "--log-level",
            "warning",
            "--workers",  # a fault's kill hits the process serving the request: the agent itself
            "1",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while not sock.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("agent did not start")
        time.sleep(0.02)
    return proc


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _leftovers(node: Node, pod: str, before: dict[str, object]) -> list[str]:
    problems = []
    now = node.vf_view(0)
    if now != before:
        problems.append(f"VF differs: {now} != {before}")
    records = records_left(node.state_dir)
    if records:
        problems.append(f"state files left: {records}")
    if node.leases():
        problems.append(f"IPAM leases left: {node.leases()}")
    if links(Path(pod).name) - {"lo"}:
        problems.append(f"links left in the pod: {links(Path(pod).name)}")
    if vlan_links():
        problems.append(f"8021q links: {vlan_links()}")
    return problems


@pytest.fixture
def vf_node(tmp_path: Path) -> Iterator[Node]:
    require_root()
    from tests.reliability.conftest import emulated_node

    yield from emulated_node(tmp_path, vfs=2)


@pytest.mark.parametrize("step", ADD_STEPS)
def test_kill_standalone_cni_mid_add_then_del_leaves_nothing(
    vf_node: Node, pod: str, step: str
) -> None:
    node = vf_node
    vf = node.kernel_vfs()[0]
    before, c = node.vf_view(0), cid()
    stdin = json.dumps(_conf(node, vf.address)).encode()
    add = run_shim(node.env("ADD", c, pod, SRIOV_CNI_FAULT=f"{step}:kill"), stdin)
    assert add.rc == -signal.SIGKILL, f"ADD was not killed at {step}: rc={add.rc} {add.stdout}"
    delete = run_shim(node.env("DEL", c, pod), stdin)
    problems = _leftovers(node, pod, before)
    FAULT_MATRIX[("standalone", AFTER[step])] = (
        "clean"
        if delete.rc == 0 and not problems
        else f"DEL rc={delete.rc}; " + "; ".join(problems)
    )
    assert delete.rc == 0, delete.stdout
    assert problems == []


def _gc_without(node: Node, pci: str, **extra: str) -> Reply:
    """GC as a runtime that lost the pod sends it: the network's conf, an empty valid list."""
    conf = {k: v for k, v in _conf(node, pci).items() if k != "deviceID"}
    gc = json.dumps({**conf, "cni.dev/valid-attachments": []}).encode()
    return run_shim({**node.env("GC", "", ""), **extra}, gc)


@pytest.mark.parametrize("step", ADD_STEPS)
def test_kill_standalone_cni_mid_add_then_gc_leaves_nothing(
    vf_node: Node, pod: str, step: str
) -> None:
    node = vf_node
    vf = node.kernel_vfs()[0]
    before, c = node.vf_view(0), cid()
    stdin = json.dumps(_conf(node, vf.address)).encode()
    add = run_shim(node.env("ADD", c, pod, SRIOV_CNI_FAULT=f"{step}:kill"), stdin)
    assert add.rc == -signal.SIGKILL, f"ADD was not killed at {step}: rc={add.rc} {add.stdout}"
    gc = _gc_without(node, vf.address)
    problems = _leftovers(node, pod, before)
    FAULT_MATRIX[("standalone, GC", AFTER[step])] = (
        "clean" if gc.rc == 0 and not problems else f"GC rc={gc.rc}; " + "; ".join(problems)
    )
    assert gc.rc == 0, gc.stdout
    assert problems == []


@pytest.mark.parametrize("step", AGENT_STEPS)
def test_kill_agent_mid_add_then_gc_through_new_agent_leaves_nothing(
    vf_node: Node, pod: str, step: str
) -> None:
    node = vf_node
    vf = node.kernel_vfs()[0]
    before, c = node.vf_view(0), cid()
    sock = node.tmp / "agent.sock"
    via_agent = {"SRIOV_CNI_AGENT_SOCKET": str(sock)}
    stdin = json.dumps(_conf(node, vf.address)).encode()
    agent = _start_agent(node, sock, f"{step}:kill")
    try:
        run_shim({**node.env("ADD", c, pod), **via_agent}, stdin)
        assert agent.wait(30) == -signal.SIGKILL, "the agent was not killed"
    finally:
        _stop(agent)
    sock.unlink(missing_ok=True)
    agent = _start_agent(node, sock, None)
    try:
        gc = _gc_without(node, vf.address, **via_agent)
    finally:
        _stop(agent)
    problems = _leftovers(node, pod, before)
    FAULT_MATRIX[("agent, GC", AFTER[step])] = (
        "clean" if gc.rc == 0 and not problems else f"GC rc={gc.rc}; " + "; ".join(problems)
    )
    assert gc.rc == 0, gc.stdout
    assert problems == []


@pytest.mark.parametrize("step", AGENT_STEPS)
def test_kill_agent_mid_add_then_del_through_new_agent_leaves_nothing(
    vf_node: Node, pod: str, step: str
) -> None:
    node = vf_node
    vf = node.kernel_vfs()[0]
    before, c = node.vf_view(0), cid()
    sock = node.tmp / "agent.sock"
    stdin = json.dumps(_conf(node, vf.address)).encode()
    env = {**node.env("ADD", c, pod), "SRIOV_CNI_AGENT_SOCKET": str(sock)}
    agent = _start_agent(node, sock, f"{step}:kill")
    try:
        add = run_shim(env, stdin)
        assert agent.wait(30) == -signal.SIGKILL, "the agent was not killed"
        assert add.rc != 0 and add.out and add.out["code"] == 11, add.stdout  # try again later
    finally:
        _stop(agent)
    sock.unlink(missing_ok=True)  # what a restarted DaemonSet pod finds: a stale socket
    agent = _start_agent(node, sock, None)
    try:
        delete = run_shim({**env, "CNI_COMMAND": "DEL"}, stdin)
    finally:
        _stop(agent)
    problems = _leftovers(node, pod, before)
    FAULT_MATRIX[("agent", AFTER[step])] = (
        "clean"
        if delete.rc == 0 and not problems
        else f"DEL rc={delete.rc}; " + "; ".join(problems)
    )
    assert delete.rc == 0, delete.stdout
    assert problems == []


def test_kill_device_plugin_mid_list_and_watch_then_restart(tmp_path: Path) -> None:
    from tests.reliability.dp_harness import RESOURCE, VFS, device_plugin_stack

    with device_plugin_stack(tmp_path) as stack:
        sim = stack.sim
        first = sim.registrations[RESOURCE]
        assert stack.proc is not None
        stack.proc.send_signal(signal.SIGKILL)
        stack.proc.wait(10)
        ended = sim.wait_until(lambda s: RESOURCE not in s.resources(), 30)
        FAULT_MATRIX[("device plugin", "ListAndWatch")] = "stream end seen" if ended else "not seen"
        assert ended, "the kubelet simulator did not see the ListAndWatch stream end"
        stack.start_plugin()
        back = sim.wait_until(
            lambda s: s.capacity(RESOURCE) == VFS and s.registrations[RESOURCE] > first, 30
        )
        FAULT_MATRIX[("device plugin", "restart")] = (
            "re-registered, devices back" if back else "not back"
        )
        assert back, "the restarted plugin did not re-register with all devices"
