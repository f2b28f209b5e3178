"""A request's logLevel through the real agent process (issue 11 #4).

One tenant's ``"logLevel": "debug"`` must give that request (and only it) debug output, with its
netconf redacted; other requests' output, and the agent's own log at its ``--log-level info``,
stay as they were, also while the requests run at the same time in the agent's workers.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import unique
from tests.integration.test_cni_fallback_support import (  # noqa: F401 (fixtures)
    AgentShim,
    Cni,
    Lan,
    agent_and_shim,
    exec_plugin,
    lan,
    ns_path,
    sh,
)

pytestmark = pytest.mark.root
PAIRS = 4


def conf_with_secret(cni: Cni, level: str, secret: str) -> dict:
    conf = cni.conf()
    conf["logLevel"] = level
    conf["ipam"] = {**conf["ipam"], "etcd_password": secret}  # ignored by host-local
    return conf


def test_one_requests_debug_level_stays_its_own(tmp_path: Path, lan: Lan,  # noqa: F811
                                                agent_and_shim: AgentShim) -> None:  # noqa: F811
    cni = Cni(tmp_path, lan.master)
    names = [unique("st-ns-") for _ in range(2 * PAIRS)]
    for name in names:
        sh("ip", "netns", "add", name)
    try:
        def call(command: str, i: int):  # type: ignore[no-untyped-def]
            debug = i % 2 == 0
            conf = conf_with_secret(cni, "debug" if debug else "info",
                                    f"secret-of-{'debug' if debug else 'info'}-{i}")
            env = agent_and_shim.env(cni.env(command, ns_path(names[i]), cid=f"st-log{i}"))
            return exec_plugin(agent_and_shim.shim, env, conf)

        for command in ("ADD", "DEL"):  # debug and info requests interleaved in the workers
            with ThreadPoolExecutor(len(names)) as pool:
                replies = list(pool.map(lambda i, c=command: call(c, i), range(len(names))))
            assert all(r.rc == 0 for r in replies), [r for r in replies if r.rc][:1]
            for i, reply in enumerate(replies):
                if i % 2 == 0:  # the debug request: its own debug lines, its netconf redacted
                    assert "DEBUG" in reply.err and f"{command} netconf" in reply.err
                    assert "<redacted>" in reply.err and "secret-of" not in reply.err
                    assert f"cid=st-log{i} " in reply.err
                else:  # an info request: nothing of anybody else, no debug
                    assert "DEBUG" not in reply.err and "secret-of" not in reply.err
                others = {f"cid=st-log{j} " for j in range(len(names)) if j != i}
                assert not any(o in reply.err for o in others), reply.err
        after = call("DEL", 1)  # an info request once the debug ones are gone
        assert after.rc == 0 and "DEBUG" not in after.err
    finally:
        for name in names:
            sh("ip", "netns", "del", name, check=False)
    agent_log = (tmp_path / "agent.log").read_text()
    assert " INFO " in agent_log  # the agent logs at its own --log-level info
    assert " DEBUG " not in agent_log, "a request's logLevel changed the agent's level"
    assert "secret-of" not in agent_log and "netconf" not in agent_log
