"""CNI spec idempotency matrix, for the VF mode (emulated host) and the macvlan fallback.

DEL twice; DEL with the netns gone; DEL without prevResult; ADD on an existing interface name
(error 107, the existing link untouched); CHECK after an out-of-band change (108); GC with an
empty and a partial valid list (``cni.dev/valid-attachments`` and ``cni.dev/attachments``);
every verb with an unsupported cniVersion (code 1).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.conftest import (
    Node,
    Reply,
    cid,
    del_netns,
    links,
    new_netns,
    records_left,
    run_inprocess,
    write_artifact,
)

pytestmark = pytest.mark.root
MODES = ("vf", "fallback")
MATRIX: dict[str, dict[str, str]] = {}


def _note(case: str, mode: str, outcome: str) -> None:
    MATRIX.setdefault(case, {})[mode] = outcome
    write_artifact("spec_matrix", MATRIX)


def _conf(node: Node, mode: str, index: int = 0, **keys: Any) -> dict[str, Any]:
    if mode == "vf":
        return node.conf(node.kernel_vfs()[index].address, **keys)
    return node.conf(None, fallback=True, **keys)


def _call(node: Node, command: str, conf: dict[str, Any], c: str, pod: str) -> Reply:
    return run_inprocess(node.env(command, c, pod), json.dumps(conf).encode())


def _records(node: Node) -> list[str]:
    return records_left(node.state_dir)


def _clean(node: Node, views: dict[int, Any]) -> None:
    assert _records(node) == [] and node.leases() == []
    assert {i: node.vf_view(i) for i in views} == views


def _views(node: Node) -> dict[int, Any]:
    return {v.index: node.vf_view(v.index) for v in node.kernel_vfs()}


@pytest.mark.parametrize("mode", MODES)
def test_del_twice(node: Node, pod: str, mode: str) -> None:
    views, c, conf = _views(node), cid(), _conf(node, mode)
    assert _call(node, "ADD", conf, c, pod).rc == 0
    first, second = _call(node, "DEL", conf, c, pod), _call(node, "DEL", conf, c, pod)
    assert (first.rc, first.stdout, second.rc, second.stdout) == (0, "", 0, "")
    _clean(node, views)
    _note("DEL twice", mode, "both succeed, nothing left")


@pytest.mark.parametrize("mode", MODES)
def test_del_with_the_netns_gone(node: Node, mode: str) -> None:
    views, c, conf = _views(node), cid(), _conf(node, mode)
    name = new_netns()
    pod = f"/var/run/netns/{name}"
    try:
        assert _call(node, "ADD", conf, c, pod).rc == 0
    finally:
        del_netns(name)
    reply = _call(node, "DEL", conf, c, pod)
    assert reply.rc == 0, reply.stdout
    _clean(node, views)
    _note("DEL, netns gone", mode, "succeeds, VF/lease restored")


@pytest.mark.parametrize("mode", MODES)
def test_del_without_prev_result(node: Node, pod: str, mode: str) -> None:
    views, c, conf = _views(node), cid(), _conf(node, mode)
    added = _call(node, "ADD", conf, c, pod)
    assert added.rc == 0
    with_prev = _call(
        node, "DEL", {**conf, "prevResult": added.out}, cid(), pod
    )  # other cid: no-op
    reply = _call(node, "DEL", conf, c, pod)
    assert (with_prev.rc, reply.rc) == (0, 0), reply.stdout
    _clean(node, views)
    _note("DEL, no prevResult", mode, "succeeds")


@pytest.mark.parametrize("mode", MODES)
def test_add_on_an_existing_interface_name_fails_and_keeps_it(
    node: Node, pod: str, mode: str
) -> None:
    ns = Path(pod).name
    subprocess.run(
        ["ip", "-n", ns, "link", "add", "net1", "type", "veth", "peer", "name", "st-peer"],
        check=True,
    )
    before = subprocess.run(
        ["ip", "-n", ns, "-d", "link", "show", "net1"], capture_output=True, text=True, check=True
    ).stdout
    views = _views(node)
    reply = _call(node, "ADD", _conf(node, mode), cid(), pod)
    assert reply.rc != 0 and reply.out is not None
    assert reply.out["code"] == 107, reply.out
    after = subprocess.run(
        ["ip", "-n", ns, "-d", "link", "show", "net1"], capture_output=True, text=True, check=True
    ).stdout
    assert after == before and links(ns) == {"lo", "net1", "st-peer"}
    _clean(node, views)
    _note("ADD, ifname exists", mode, f"code {reply.out['code']}, existing link untouched")


@pytest.mark.parametrize("mode", MODES)
def test_check_after_an_out_of_band_change(node: Node, pod: str, mode: str) -> None:
    c, conf = cid(), _conf(node, mode)
    added = _call(node, "ADD", conf, c, pod)
    assert added.rc == 0
    checked = _call(node, "CHECK", {**conf, "prevResult": added.out}, c, pod)
    assert checked.rc == 0, checked.stdout
    subprocess.run(["ip", "-n", Path(pod).name, "link", "set", "net1", "mtu", "1280"], check=True)
    reply = _call(node, "CHECK", {**conf, "prevResult": added.out}, c, pod)
    assert reply.rc != 0 and reply.out is not None
    assert reply.out["code"] == 108, reply.out
    assert _call(node, "DEL", conf, c, pod).rc == 0
    _note("CHECK after MTU change", mode, f"code {reply.out['code']}")


@pytest.mark.parametrize("key", ["cni.dev/valid-attachments", "cni.dev/attachments"])
@pytest.mark.parametrize("mode", MODES)
def test_gc_empty_and_partial_valid_list(node: Node, pod: str, mode: str, key: str) -> None:
    views = _views(node)
    kept, stale = cid(), cid()
    other = new_netns()
    try:
        assert _call(node, "ADD", _conf(node, mode, index=0), kept, pod).rc == 0
        assert (
            _call(node, "ADD", _conf(node, mode, index=1), stale, f"/var/run/netns/{other}").rc == 0
        )
        gc_conf = {k: v for k, v in _conf(node, mode).items() if k != "deviceID"}
        partial = _call(
            node, "GC", {**gc_conf, key: [{"containerID": kept, "ifname": "net1"}]}, "", ""
        )
        assert partial.rc == 0, partial.stdout
        assert len(_records(node)) == (2 if mode == "vf" else 1)  # VF: + its owner record
        assert len(node.leases()) == 1
        assert links(other) == {"lo"} and links(Path(pod).name) == {"lo", "net1"}
    finally:
        del_netns(other)
    empty = _call(node, "GC", {**gc_conf, key: []}, "", "")
    assert empty.rc == 0, empty.stdout
    assert links(Path(pod).name) == {"lo"}
    _clean(node, views)
    _note(f"GC partial+empty ({key.split('/')[1]})", mode, "stale removed, valid kept, then all")


@pytest.mark.parametrize("command", ["ADD", "DEL", "CHECK", "GC", "STATUS"])
def test_unsupported_cni_version_is_code_1(node: Node, pod: str, command: str) -> None:
    for mode in MODES:
        reply = _call(node, command, {**_conf(node, mode), "cniVersion": "1.2.0"}, cid(), pod)
        assert reply.rc == 1 and reply.out is not None and reply.out["code"] == 1, reply.stdout
        _note(f"{command}, cniVersion 1.2.0", mode, "code 1")
    assert _records(node) == [] and node.leases() == []
