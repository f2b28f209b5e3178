"""Plugin verbs over a registered fake mode, a real state store and the in-process host-local."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cni import skel
from cni.host_local import HostLocal
from cni.ipam import NoIpam
from cni.plugin import MODE_REGISTRY, AttachmentContext, Plugin, register_mode
from cni.protocol import Interface, Result
from cni.record import VfPart
from cni.state import StateStore
from sriov.types import PciAddress

MODE_REGISTRY_DPDK = MODE_REGISTRY["dpdk"]


class FakeMode:
    """Records what the plugin asks of a mode; uses ctx.ipam like a real mode would."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []
        self.fail_delete = False

    def add(self, ctx: AttachmentContext) -> Result:
        self.calls.append(("add", ctx.args.container_id, str(ctx.device_id)))
        ipam = ctx.ipam.add(ctx.conf, ctx.args)
        assert ctx.journal is not None
        ctx.journal.stage(vf=VfPart(pf="st-pf0", vf_index=2))
        return Result(
            cni_version=ctx.conf.cni_version,
            interfaces=(
                Interface(
                    name=ctx.args.ifname, sandbox=ctx.args.netns, pci_id=str(ctx.device_id or "")
                ),
            ),
            ips=ipam.ips,
        )

    def delete(self, ctx: AttachmentContext) -> None:
        ctx.ipam.delete(ctx.conf, ctx.args)  # a mode owns its IPAM (cni.mode.Mode)
        vf = ctx.record.vf if ctx.record else None
        self.calls.append(("delete", ctx.args.container_id, f"vf {vf.vf_index if vf else None}"))
        if self.fail_delete:
            raise RuntimeError("cannot reset VF")

    def check(self, ctx: AttachmentContext) -> None:
        ctx.ipam.check(ctx.conf, ctx.args)
        self.calls.append(("check", ctx.args.container_id, ""))


@pytest.fixture
def mode() -> Iterator[FakeMode]:
    m = FakeMode()
    register_mode("dpdk", m)  # the record's mode is a typed AttachmentMode: stand in for one
    yield m
    register_mode("dpdk", MODE_REGISTRY_DPDK)


class Env:
    def __init__(self, tmp_path: Path, lookup: Any = None) -> None:
        self.tmp = tmp_path
        self.state = StateStore(tmp_path / "state")
        self.plugin = Plugin(
            netlink_factory=lambda: None,
            host_factory=lambda: None,
            ipam_factory=lambda conf, args: HostLocal() if conf.ipam_type else NoIpam(),
            state=self.state,
            device_lookup=lookup,
            mode_of_device=lambda pci: "dpdk",
            sysfs_root=tmp_path / "sysroot",
        )

    def conf(self, version: str = "1.0.0", **extra: Any) -> dict[str, Any]:
        return {
            "cniVersion": version,
            "name": "st-net",
            "type": "sriov",
            "deviceID": "0000:3b:02.1",
            "ipam": {
                "type": "host-local",
                "dataDir": str(self.tmp / "ipam"),
                "ranges": [[{"subnet": "10.5.0.0/24"}]],
            },
            **extra,
        }

    def run(self, cmd: str, body: dict[str, Any], cid: str = "c1") -> tuple[int, Any]:
        env = {
            "CNI_COMMAND": cmd,
            "CNI_CONTAINERID": cid,
            "CNI_NETNS": "/run/netns/st-x",
            "CNI_IFNAME": "net1",
            "CNI_PATH": "/usr/lib/cni",
        }
        out = io.StringIO()
        status = skel.dispatch(env, json.dumps(body).encode(), out, io.StringIO(), self.plugin)
        return status, json.loads(out.getvalue()) if out.getvalue() else None

    def ips_held(self) -> set[str]:
        d = self.tmp / "ipam" / "st-net"
        return {p.name for p in d.iterdir() if p.name[0].isdigit()} if d.exists() else set()


def test_add_check_del_lifecycle(tmp_path: Path, mode: FakeMode) -> None:
    env = Env(tmp_path)
    status, result = env.run("ADD", env.conf())
    assert status == 0 and result["interfaces"][0]["pciID"] == "0000:3b:02.1"
    assert result["ips"][0]["address"] == "10.5.0.2/24"
    record = env.state.load("c1", "net1")
    assert record is not None
    assert (record.mode, record.network, record.complete) == ("dpdk", "st-net", True)
    assert record.vf == VfPart(pf="st-pf0", vf_index=2)
    assert record.device_id == "0000:3b:02.1" and record.result is not None
    status, err = env.run("ADD", env.conf())
    assert status == 1 and err["code"] == 107  # ADD twice without DEL
    assert env.run("CHECK", env.conf(prevResult=result)) == (0, None)
    assert env.run("CHECK", env.conf())[1]["code"] == 7  # prevResult required
    assert env.run("DEL", env.conf()) == (0, None)
    assert env.run("DEL", env.conf()) == (0, None)  # idempotent
    assert env.state.load("c1", "net1") is None and env.ips_held() == set()
    assert [c[0] for c in mode.calls] == ["add", "check", "delete"]
    assert env.run("CHECK", env.conf(prevResult=result))[1]["code"] == 3


def test_failed_mode_delete_keeps_record_for_retry(tmp_path: Path, mode: FakeMode) -> None:
    env = Env(tmp_path)
    env.run("ADD", env.conf())
    mode.fail_delete = True
    status, err = env.run("DEL", env.conf())
    assert status == 1 and err["code"] == 999 and "cannot reset VF" in err["details"]
    assert env.state.load("c1", "net1") is not None
    mode.fail_delete = False
    assert env.run("DEL", env.conf()) == (0, None)


def test_no_device_and_no_fallback_is_config_error(tmp_path: Path, mode: FakeMode) -> None:
    env = Env(tmp_path)
    body = env.conf()
    del body["deviceID"]
    status, err = env.run("ADD", body)
    assert status == 1 and err["code"] == 7 and "deviceID" in err["msg"]
    assert env.ips_held() == set()


def test_device_lookup_used_when_netconf_has_no_device(tmp_path: Path, mode: FakeMode) -> None:
    env = Env(tmp_path, lookup=lambda args, conf, state: PciAddress("0000:3b:02.5"))
    body = env.conf()
    del body["deviceID"]
    status, result = env.run("ADD", body)
    assert status == 0 and result["interfaces"][0]["pciID"] == "0000:3b:02.5"


def test_no_vf_allocated_to_the_pod_uses_the_fallback(tmp_path: Path, mode: FakeMode) -> None:
    from cni.netconf import NetConf
    from cni.protocol import CmdArgs, Command

    asked: list[str | None] = []

    def lookup(args: CmdArgs, conf: NetConf, state: StateStore) -> PciAddress | None:
        asked.append(args.arg("K8S_POD_NAME"))
        return None  # pod-resources: nothing allocated to this pod

    env = Env(tmp_path, lookup=lookup)
    body = env.conf(fallback={"type": "macvlan", "master": "st-eth0"})
    del body["deviceID"]
    args = CmdArgs(command=Command.ADD, container_id="c1", netns="/run/netns/st-x", ifname="net1",
                   args=(("K8S_POD_NAME", "web-0"), ("K8S_POD_NAMESPACE", "st")))
    conf = NetConf.parse(json.dumps(body).encode(), args)
    assert env.plugin.select_mode(args, conf, env.state) == ("fallback", None)
    assert asked == ["web-0"]


def test_gc_removes_only_stale_attachments_of_this_network(tmp_path: Path, mode: FakeMode) -> None:
    env = Env(tmp_path)
    for cid in ("keep", "stale"):
        env.run("ADD", env.conf(), cid=cid)
    other = {**env.conf(), "name": "st-other"}
    other["ipam"] = {**other["ipam"], "ranges": [[{"subnet": "10.6.0.0/24"}]]}
    env.run("ADD", other, cid="foreign")
    gc = env.conf(
        version="1.1.0",
        **{"cni.dev/valid-attachments": [{"containerID": "keep", "ifname": "net1"}]},
    )
    status, _ = env.run("GC", gc)
    assert status == 0
    left = sorted(r.container_id for r in env.state.list_attachments()[0])
    assert left == ["foreign", "keep"]
    assert env.ips_held() == {"10.5.0.2"}
    assert ("delete", "stale", "vf 2") in mode.calls


def test_gc_reports_failures_but_continues(tmp_path: Path, mode: FakeMode) -> None:
    env = Env(tmp_path)
    for cid in ("a", "b"):
        env.run("ADD", env.conf(), cid=cid)
    mode.fail_delete = True
    status, err = env.run("GC", env.conf(version="1.1.0", **{"cni.dev/valid-attachments": []}))
    assert status == 1 and "2 cleanup step(s) failed" in err["msg"]
    assert env.ips_held() == set()  # IPAM released although the mode failed


def test_status_without_device_id_needs_an_sriov_pf(tmp_path: Path, mode: FakeMode) -> None:
    from sriov.emulate.profiles import INTEL_X710
    from sriov.emulate.tree import PfSpec, SysfsTreeBuilder

    env = Env(tmp_path)
    body = env.conf(version="1.1.0")
    del body["deviceID"]  # as in a NetworkAttachmentDefinition: Multus adds it per pod
    status, err = env.run("STATUS", body)
    assert status == 1 and err["code"] == 50 and "SR-IOV PFs" in err["details"]
    SysfsTreeBuilder(tmp_path / "sysroot").add_pf(
        PfSpec(address="0000:3b:00.0", ifname="ens1f0", profile=INTEL_X710, num_vfs=2))
    assert env.run("STATUS", body) == (0, None)


def test_status(tmp_path: Path, mode: FakeMode) -> None:
    env = Env(tmp_path)
    status, err = env.run("STATUS", env.conf(version="1.1.0"))
    assert status == 1 and err["code"] == 50 and "0000:3b:02.1" in err["details"]
    (tmp_path / "sysroot/sys/bus/pci/devices/0000:3b:02.1").mkdir(parents=True)
    assert env.run("STATUS", env.conf(version="1.1.0")) == (0, None)
    body = env.conf(version="1.1.0", fallback={"type": "macvlan", "master": "st-eth0"})
    del body["deviceID"]
    assert env.run("STATUS", body)[1]["code"] == 50
