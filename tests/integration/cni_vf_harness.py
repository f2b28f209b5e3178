"""Shared harness for the VF/DPDK-mode CNI tests: an emulated host in a tmp root, real netns,
the plugin driven through ``cni.main.run`` in-process or the real ``sriov`` executable."""

from __future__ import annotations

import dataclasses
import io
import json
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from cni.main import Runtime, run
from sriov.emulate import host as emu_host
from sriov.emulate.spec import EmulationSpec, Profile
from sriov.host import Host, open_host
from sriov.netlink import Netlink

CNI_BIN = "/usr/lib/cni"
SRIOV_EXE = Path(sys.executable).parent / "sriov"


class Injected(RuntimeError):
    """The failure a test injects at a named ADD step."""


@dataclasses.dataclass
class Reply:
    rc: int
    out: dict[str, Any] | None
    stdout: str
    stderr: str


@dataclasses.dataclass
class Emu:
    root: Path
    state_dir: Path
    ipam_dir: Path
    tmp: Path
    nl: Netlink
    spec: EmulationSpec

    @property
    def host(self) -> Host:
        return open_host(self.root, self.nl)

    def vf(self, index: int, pf: int = 0) -> Any:
        h = self.host
        h.refresh()
        pf_addr = h.sysfs.inventory().pfs[pf].address
        return next(v for v in h.sysfs.inventory().vfs_of(pf_addr) if v.index == index)

    @property
    def pf_netdev(self) -> str:
        return f"{self.spec.pf_prefix}0"

    def conf(self, pci: str | None, version: str = "1.1.0", ipam: str | None = "host-local",
             **keys: Any) -> dict[str, Any]:
        conf: dict[str, Any] = {"cniVersion": version, "name": "st-net", "type": "sriov", **keys}
        if pci is not None:
            conf.setdefault("deviceID", pci)
        if ipam == "host-local":
            conf["ipam"] = {"type": "host-local", "dataDir": str(self.ipam_dir),
                            "ranges": [[{"subnet": "10.55.0.0/24"}]],
                            "routes": [{"dst": "0.0.0.0/0"}]}
        elif ipam == "static":
            conf["ipam"] = {"type": "static", "addresses": [{"address": "10.56.0.5/24"}]}
        return conf

    def env(self, command: str, cid: str, netns: str, ifname: str = "net1",
            **extra: str) -> dict[str, str]:
        env = {"CNI_COMMAND": command, "CNI_CONTAINERID": cid, "CNI_NETNS": netns,
               "CNI_IFNAME": ifname, "CNI_PATH": CNI_BIN, "SRIOV_SYSFS_ROOT": str(self.root),
               "SRIOV_CNI_STATE_DIR": str(self.state_dir), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
               "SRIOV_CNI_AGENT_SOCKET": str(self.tmp / "no-agent.sock")}
        env.update(extra)
        return env

    def call(self, command: str, conf: dict[str, Any], cid: str, netns: str, ifname: str = "net1",
             faults: Callable[[str], None] | None = None, **extra: str) -> Reply:
        env = self.env(command, cid, netns, ifname, **extra)
        stdout, stderr = io.StringIO(), io.StringIO()
        runtime = Runtime.from_env(env)
        if faults is not None:
            original = runtime.plugin

            def plugin(e: Any, s: Any, *started: Any) -> Any:
                p = original(e, s, *started)
                p.faults = faults
                return p

            runtime.plugin = plugin  # type: ignore[method-assign]
        try:
            rc = run(env, json.dumps(conf).encode(), stdout, stderr, runtime=runtime, timeout=0)
        finally:
            runtime.close()
        text = stdout.getvalue()
        return Reply(rc, json.loads(text) if text.strip() else None, text, stderr.getvalue())

    def exec(self, command: str, conf: dict[str, Any], cid: str, netns: str,
             ifname: str = "net1", **extra: str) -> Reply:
        """Through the real ``sriov`` executable (shim, no agent: in-process fallback)."""
        proc = subprocess.run([str(SRIOV_EXE)], input=json.dumps(conf).encode(),
                              env=self.env(command, cid, netns, ifname, **extra),
                              capture_output=True, timeout=60, check=False)
        text = proc.stdout.decode()
        return Reply(proc.returncode, json.loads(text) if text.strip() else None, text,
                     proc.stderr.decode())


def emulated_host(tmp_path: Path, profile: Profile = Profile.IGB, vfs: int = 3,
                  vfio: int = 1) -> Iterator[Emu]:
    tag = secrets.token_hex(2)
    spec = EmulationSpec(pfs=1, vfs=vfs, profile=profile, vfio=vfio, pf_prefix=f"st-{tag}p",
                         wire_prefix=f"st-{tag}w", bridge=f"st-{tag}b")
    root = tmp_path / "host"
    nl = Netlink()
    emu_host.up(root, spec, nl)
    try:
        yield Emu(root=root, state_dir=tmp_path / "state", ipam_dir=tmp_path / "ipam", tmp=tmp_path,
                  nl=nl, spec=spec)
    finally:
        try:
            emu_host.down(root, nl)
        finally:
            nl.close()


def link_show(name: str, netns: str | None = None) -> str:
    """``ip -d link show`` of one link (what a user compares before/after)."""
    cmd = ["ip", "-d", "link", "show", "dev", name]
    if netns:
        cmd[1:1] = ["-n", netns]
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout


def netns_path(name: str) -> str:
    return f"/var/run/netns/{name}"


def new_netns() -> str:
    name = "st-ns-" + secrets.token_hex(3)
    subprocess.run(["ip", "netns", "add", name], check=True)
    return name


def del_netns(name: str) -> None:
    subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)
