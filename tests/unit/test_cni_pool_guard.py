"""Pool-config guard: ADD takes only VFs that a pool of the device plugin config selects.

A real on-disk sysfs tree (X710, 4 VFs) read by the real SysfsReader; the plugin runs a
recording mode so the test sees whether anything was attempted for a refused VF.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cni import skel
from cni.agent import main as agent_main
from cni.errors import CniError
from cni.ipam import NoIpam
from cni.main import Runtime
from cni.plugin import MODE_REGISTRY, AttachmentContext, Plugin, register_mode
from cni.pool_guard import POOL_CONFIG_ENV, PoolGuard
from cni.protocol import Interface, Result
from cni.record import VfPart
from cni.state import StateStore
from sriov.emulate.profiles import INTEL_X710
from sriov.emulate.tree import PfSpec, SysfsTreeBuilder
from sriov.sysfs import SysfsReader
from sriov.types import PciAddress

PF = "0000:3b:00.0"
VF0, VF1, VF2 = "0000:3b:02.0", "0000:3b:02.1", "0000:3b:02.2"


def pools(*entries: tuple[str, str]) -> str:
    """A resourceList with one pool per (name, pfNames entry)."""
    return json.dumps({"resourceList": [
        {"resourceName": name, "selectors": {"pfNames": [pf]}} for name, pf in entries]})


class RecordingMode:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def add(self, ctx: AttachmentContext) -> Result:
        self.calls.append(("add", str(ctx.device_id)))
        assert ctx.journal is not None
        ctx.journal.stage(vf=VfPart(pf="ens1f0", vf_index=0))
        return Result(cni_version=ctx.conf.cni_version,
                      interfaces=(Interface(name=ctx.args.ifname, sandbox=ctx.args.netns),))

    def delete(self, ctx: AttachmentContext) -> None:
        self.calls.append(("delete", str(ctx.device_id)))

    def check(self, ctx: AttachmentContext) -> None:
        self.calls.append(("check", str(ctx.device_id)))


@pytest.fixture(autouse=True)
def _real_dpdk_mode_after() -> Iterator[None]:
    real = MODE_REGISTRY["dpdk"]
    yield
    register_mode("dpdk", real)


class Node:
    def __init__(self, tmp_path: Path) -> None:
        self.root = tmp_path / "host"
        SysfsTreeBuilder(self.root).add_pf(PfSpec(
            address=PF, ifname="ens1f0", profile=INTEL_X710, num_vfs=4,
            vf_ifnames=("ens1f0v0", "ens1f0v1", "ens1f0v2", "ens1f0v3")))
        self.config = tmp_path / "pcidp" / "config.json"
        self.config.parent.mkdir()
        self.write(pools(("fast", "ens1f0#0-1")))
        self.guard = PoolGuard(self.config, SysfsReader(self.root).vf)
        self.state = StateStore(tmp_path / "state")
        self.mode = RecordingMode()
        register_mode("dpdk", self.mode)  # records name a typed mode: stand in for one
        self.plugin = Plugin(
            netlink_factory=lambda: None, host_factory=lambda: None,
            ipam_factory=lambda conf, args: NoIpam(), state=self.state,
            mode_of_device=lambda pci: "dpdk", device_guard=self.guard.check,
            sysfs_root=self.root)

    def write(self, text: str) -> None:
        self.config.write_text(text)
        st = self.config.stat()  # a new mtime even within the filesystem's timestamp tick
        os.utime(self.config, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))

    def run(self, cmd: str, device: str, cid: str = "c1", **extra: Any) -> tuple[int, Any]:
        env = {"CNI_COMMAND": cmd, "CNI_CONTAINERID": cid, "CNI_NETNS": "/run/netns/st-x",
               "CNI_IFNAME": "net1", "CNI_PATH": "/usr/lib/cni"}
        body = {"cniVersion": "1.0.0", "name": "st-net", "type": "sriov", "deviceID": device,
                **extra}
        out = io.StringIO()
        status = skel.dispatch(env, json.dumps(body).encode(), out, io.StringIO(), self.plugin)
        return status, json.loads(out.getvalue()) if out.getvalue() else None


@pytest.fixture
def node(tmp_path: Path) -> Node:
    return Node(tmp_path)


def test_vf_in_a_pool_is_accepted(node: Node) -> None:
    status, result = node.run("ADD", VF1)
    assert status == 0, result
    assert node.mode.calls == [("add", VF1)]
    assert node.state.load("c1", "net1") is not None


def test_vf_outside_every_pool_is_refused_before_anything_happens(node: Node) -> None:
    status, err = node.run("ADD", VF2)
    assert status == 1 and err["code"] == 100
    assert VF2 in err["msg"] and "fast" in err["msg"] and str(node.config) in err["msg"]
    assert "ens1f0" in err["details"]  # the selector's reason, as `sriovctl pools` tells it
    assert node.mode.calls == [] and node.state.list_attachments() == ([], [])


@pytest.mark.parametrize("device", [PF, "0000:99:00.0"])
def test_pf_and_missing_device_are_still_refused(node: Node, device: str) -> None:
    status, err = node.run("ADD", device)
    assert status == 1 and err["code"] == 100 and device in err["msg"]
    assert node.mode.calls == []


def test_path_as_device_id_is_refused_by_the_netconf(node: Node) -> None:
    status, err = node.run("ADD", f"/sys/bus/pci/devices/{VF0}")
    assert status == 1 and err["code"] == 7 and "deviceID" in err["msg"]
    assert node.mode.calls == []


def test_config_edit_is_picked_up(node: Node) -> None:
    assert node.run("ADD", VF2, cid="c1")[1]["code"] == 100
    node.write(pools(("fast", "ens1f0#0-1"), ("slow", "ens1f0#2-3")))
    status, result = node.run("ADD", VF2, cid="c2")
    assert status == 0, result


def test_config_replaced_by_a_configmap_symlink_swap_is_picked_up(node: Node) -> None:
    data = node.config.parent / "..2024_01"
    data.mkdir()
    (data / "config.json").write_text(pools(("fast", "ens1f0#0-1")))
    node.config.unlink()
    node.config.symlink_to(data / "config.json")
    assert node.run("ADD", VF2, cid="c1")[1]["code"] == 100
    fresh = node.config.parent / "..2024_02"
    fresh.mkdir()
    (fresh / "config.json").write_text(pools(("every", "ens1f0")))
    tmp_link = node.config.parent / "config.json.tmp"
    tmp_link.symlink_to(fresh / "config.json")
    tmp_link.replace(node.config)
    assert node.run("ADD", VF2, cid="c2")[0] == 0


@pytest.mark.parametrize("text", ["{not json", '{"resourceList": [{"resourceName": "a b"}]}'])
def test_invalid_config_fails_closed_until_fixed(node: Node, text: str) -> None:
    node.write(text)
    status, err = node.run("ADD", VF0)
    assert status == 1 and err["code"] == 50
    assert str(node.config) in err["msg"] and err["details"]
    assert node.mode.calls == [] and node.state.list_attachments() == ([], [])
    node.write(pools(("fast", "ens1f0")))
    assert node.run("ADD", VF0)[0] == 0


def test_config_the_device_plugin_accepts_does_not_fail_closed(node: Node) -> None:
    # operator-rendered shape (Go field spellings, SelectorObj) plus an unknown key and a
    # case-variant PF name: upstream's device plugin serves it, so the guard must too
    node.write(json.dumps({"resourceList": [
        {"resourceName": "fast", "selectors": {"pfNames": ["ENS1F0#0-1"], "IsRdma": False,
                                               "NeedVhostNet": False, "colour": "blue"},
         "SelectorObj": None, "someFutureKey": 1}]}))
    assert node.run("ADD", VF1, cid="c1")[0] == 0
    status, err = node.run("ADD", VF2, cid="c2")
    assert status == 1 and err["code"] == 100  # outside the pool, not "config unusable"


def test_missing_config_fails_closed(node: Node) -> None:
    node.config.unlink()
    status, err = node.run("ADD", VF0)
    assert status == 1 and err["code"] == 50 and "cannot read" in err["details"]


def test_del_and_gc_do_not_consult_the_pools(node: Node) -> None:
    assert node.run("ADD", VF0, cid="c1")[0] == 0
    assert node.run("ADD", VF1, cid="c2")[0] == 0
    node.write("{broken")  # and then the config goes bad: cleanup must still work
    assert node.run("DEL", VF0, cid="c1") == (0, None)
    gc = {"cni.dev/valid-attachments": []}
    assert node.run("GC", VF0, cid="c9", cniVersion="1.1.0", **gc) == (0, None)
    assert node.state.list_attachments() == ([], [])
    assert node.mode.calls[2:] == [("delete", VF0), ("delete", VF1)]


def test_config_is_read_once_per_file_version(node: Node, monkeypatch: pytest.MonkeyPatch) -> None:
    import sriov.pools

    reads: list[object] = []
    real = sriov.pools.load_pool_config
    monkeypatch.setattr(sriov.pools, "load_pool_config",
                        lambda path, **kw: reads.append(path) or real(path, **kw))
    for _ in range(3):
        node.guard.check(PciAddress(VF0))
    assert len(reads) == 1
    node.write(pools(("fast", "ens1f0#0")))
    with pytest.raises(CniError) as refused:
        node.guard.check(PciAddress(VF1))
    assert refused.value.code == 100 and len(reads) == 2


def test_runtime_and_agent_take_the_pool_config(node: Node, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    rt = Runtime.from_env({POOL_CONFIG_ENV: str(node.config), "SRIOV_SYSFS_ROOT": str(node.root)})
    assert rt.pool_guard is not None and rt.pool_guard.path == node.config
    rt.pool_guard.check(PciAddress(VF0))  # reads the runtime's sysfs root
    with pytest.raises(CniError):
        rt.pool_guard.check(PciAddress(VF2))
    assert Runtime.from_env({}).pool_guard is None  # unset: any VF of the node
    assert Runtime.from_env({POOL_CONFIG_ENV: ""}).pool_guard is None


class _Started(Exception):
    pass


def test_agent_flag_reaches_the_runtime(node: Node, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[Any, ...]] = []

    def fake_warm_runtime(*args: Any, **kwargs: Any) -> Runtime:
        seen.append(args)
        raise _Started

    monkeypatch.setattr("cni.agent.warm_runtime", fake_warm_runtime)
    with pytest.raises(_Started):
        agent_main(["--socket", str(tmp_path / "a.sock"), "--pool-config", str(node.config),
                    "--workers", "1"])  # in this process: worker processes warm up after a fork
    assert seen[0][2] == node.config


def test_device_plugin_hands_its_config_to_the_embedded_agent(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    import cni.agent
    from deviceplugin.cli import _start_cni_agent

    seen: dict[str, Any] = {}

    class _Runtime:
        plugin = None
        after_reply = None

        def close(self) -> None:
            seen["closed"] = True

    def fake_warm_runtime(sysfs_root: Path, state_dir: Path, pool_config: Path) -> _Runtime:
        seen.update(sysfs_root=sysfs_root, pool_config=pool_config)
        return _Runtime()

    class _Agent:
        def __init__(self, socket: Path, handlers: object, client_uid: int | None) -> None:
            seen["client_uid"] = client_uid

        def bind(self) -> None: ...
        def serve_forever(self) -> None: ...
        def stop(self) -> None: ...

    monkeypatch.setattr(cni.agent, "warm_runtime", fake_warm_runtime)
    monkeypatch.setattr(cni.agent, "CniAgent", _Agent)
    config = tmp_path / "config.json"
    stop = threading.Event()
    stop.set()
    _start_cni_agent(tmp_path / "a.sock", stop, tmp_path, config, 1000).join(5)
    assert seen == {"sysfs_root": tmp_path, "pool_config": config, "client_uid": 1000,
                    "closed": True}
