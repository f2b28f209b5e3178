"""Fallback mode through the installed shim and a real resident agent, in parallel."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import unique
from tests.deferred import settle
from tests.integration.test_cni_fallback_support import (  # noqa: F401 (fixtures)
    AgentShim,
    Cni,
    Lan,
    agent_and_shim,
    exec_plugin,
    lan,
    link_json,
    ns_path,
    sh,
)

pytestmark = pytest.mark.root
PARALLEL = 16


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_parallel_adds_through_shim_and_agent(tmp_path: Path, lan: Lan,  # noqa: F811
                                              agent_and_shim: AgentShim) -> None:  # noqa: F811
    cni = Cni(tmp_path, lan.master)
    conf = cni.conf()
    names = [unique("st-ns-") for _ in range(PARALLEL)]
    for name in names:
        sh("ip", "netns", "add", name)
    try:
        def call(command: str, i: int):  # type: ignore[no-untyped-def]
            env = agent_and_shim.env(cni.env(command, ns_path(names[i]), cid=f"st-par{i}"))
            return exec_plugin(agent_and_shim.shim, env, conf)

        fds = []
        for _round in range(2):  # round 1 warms every agent worker; round 2 must not grow
            with ThreadPoolExecutor(PARALLEL) as pool:
                adds = list(pool.map(lambda i: call("ADD", i), range(PARALLEL)))
            assert all(r.rc == 0 for r in adds), [r for r in adds if r.rc][:2]
            ips = {r.out["ips"][0]["address"] for r in adds}  # type: ignore[index]
            assert len(ips) == PARALLEL, "two pods got the same address"
            for name, reply in zip(names, adds, strict=True):
                info = link_json(name, "net1")
                assert info is not None and info["address"] == reply.out["interfaces"][0]["mac"]  # type: ignore[index]
            assert len(cni.leases()) == PARALLEL and len(cni.records()) == PARALLEL
            with ThreadPoolExecutor(PARALLEL) as pool:
                dels = list(pool.map(lambda i: call("DEL", i), range(PARALLEL)))
            assert all(r.rc == 0 for r in dels), [r for r in dels if r.rc][:2]
            settle(cni.state_dir)  # the links' deletion runs after each DEL's answer (deferred)
            assert cni.leases() == [] and cni.records() == []
            assert all(link_json(name, "net1") is None for name in names)
            fds.append(open_fds(agent_and_shim.proc.pid))
        assert fds[1] <= fds[0], f"agent leaks descriptors per request: {fds}"
    finally:
        for name in names:
            sh("ip", "netns", "del", name, check=False)


def test_shim_without_agent_runs_in_process(tmp_path: Path, lan: Lan, netns: str,  # noqa: F811
                                            agent_and_shim: AgentShim) -> None:  # noqa: F811
    cni = Cni(tmp_path, lan.master)
    env = {**cni.env("ADD", ns_path(netns)), "SRIOV_CNI_AGENT_SOCKET": str(tmp_path / "none.sock")}
    reply = exec_plugin(agent_and_shim.shim, env, cni.conf())
    assert reply.rc == 0, reply
    assert link_json(netns, "net1") is not None
    assert exec_plugin(agent_and_shim.shim, {**env, "CNI_COMMAND": "DEL"}, cni.conf()).rc == 0
    assert link_json(netns, "net1") is None and cni.leases() == []
