"""Paths a netconf names are not trusted (issue 11 #5): ``stateDir`` and ``logFile``.

VF ownership and locks live in the configured state dir only, so a second pod pointing its
netconf at another ``stateDir`` cannot take a live pod's VF; and root never creates a directory
a netconf names.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reliability.conftest import (
    Node,
    cid,
    del_netns,
    emulated_node,
    new_netns,
    records_left,
    run_inprocess,
)

pytestmark = pytest.mark.root


@pytest.fixture
def dpdk_node(tmp_path: Path) -> Iterator[Node]:
    from tests.conftest import require_root

    require_root()
    yield from emulated_node(tmp_path, vfs=2, vfio=1)


def test_another_state_dir_cannot_take_a_live_pods_dpdk_vf(dpdk_node: Node) -> None:
    node = dpdk_node
    [vf] = [v for v in node.vfs() if v.driver_kind != "kernel"]
    pods = [new_netns(), new_netns()]
    try:
        first = cid()
        conf1 = node.conf(vf.address, vlan=10)
        add1 = run_inprocess(node.env("ADD", first, f"/var/run/netns/{pods[0]}"),
                             json.dumps(conf1).encode())
        assert add1.rc == 0, add1.stdout + add1.stderr
        pf_side = node.vf_view(vf.index)["pf"]
        assert pf_side["vlan"] == 10

        other_dir = node.tmp / "elsewhere" / "state"
        conf2 = node.conf(vf.address, vlan=20, stateDir=str(other_dir))
        add2 = run_inprocess(node.env("ADD", cid(), f"/var/run/netns/{pods[1]}"),
                             json.dumps(conf2).encode())
        assert add2.rc == 1 and add2.out is not None, add2.stdout
        assert add2.out["code"] == 11 and "busy" in add2.out["msg"], add2.out
        assert "ignoring netconf stateDir" in add2.stderr
        assert node.vf_view(vf.index)["pf"] == pf_side  # VLAN 10, not 20
        assert not (node.tmp / "elsewhere").exists(), "root created the netconf's directory"

        deleted = run_inprocess(node.env("DEL", first, f"/var/run/netns/{pods[0]}"),
                                json.dumps(conf1).encode())
        assert deleted.rc == 0, deleted.stdout
        assert records_left(node.state_dir) == []
    finally:
        for pod in pods:
            del_netns(pod)


def test_the_configured_state_dir_named_in_the_netconf_is_accepted(node: Node, pod: str) -> None:
    vf = node.kernel_vfs()[0]
    conf = node.conf(vf.address, stateDir=str(node.state_dir) + "/")
    c = cid()
    added = run_inprocess(node.env("ADD", c, pod), json.dumps(conf).encode())
    assert added.rc == 0 and "ignoring netconf stateDir" not in added.stderr, added.stdout
    assert run_inprocess(node.env("DEL", c, pod), json.dumps(conf).encode()).rc == 0


def test_a_log_file_outside_the_allowed_dirs_is_not_created(node: Node, pod: str) -> None:
    target = node.tmp / "not-a-log-dir" / "sriov.log"
    target.parent.mkdir()
    vf = node.kernel_vfs()[0]
    conf = node.conf(vf.address, logFile=str(target), logLevel="debug")
    c = cid()
    env = node.env("ADD", c, pod, SRIOV_CNI_LOG_DIRS=str(node.tmp / "logs"))
    added = run_inprocess(env, json.dumps(conf).encode())
    assert added.rc == 0, added.stdout
    assert "outside the allowed log directories" in added.stderr
    assert not target.exists()
    (node.tmp / "logs").mkdir()
    allowed = node.tmp / "logs" / "sriov.log"
    deleted = run_inprocess({**env, "CNI_COMMAND": "DEL"},
                            json.dumps({**conf, "logFile": str(allowed)}).encode())
    assert deleted.rc == 0 and "DEL done" in allowed.read_text()
