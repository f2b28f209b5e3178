"""Harness of the reliability suite: an emulated SR-IOV host, pod netns, CNI calls, snapshots.

Sizes: the default run is small and fast; ``RELIABILITY_FULL=1`` (set by ``hack/report``) runs
the full sizes. ``RELIABILITY_ARTIFACTS=<dir>`` makes tests write their measurements there as
JSON (``hack/report`` turns them into docs/report.md); unset, nothing is written.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_root
from tests.deferred import settle

FULL = os.environ.get("RELIABILITY_FULL", "") == "1"
CNI_BIN = "/usr/lib/cni"
SHIM = Path(sys.executable).parent / "sriov"
AGENT = Path(sys.executable).parent / "sriov-cni-agent"
BASE_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
FAULT_MATRIX: dict[tuple[str, str], str] = {}
"""(process killed, crashed right after step) -> outcome, filled by test_faults.py."""


def size(default: int, full: int) -> int:
    """``full`` under RELIABILITY_FULL=1, else ``default``."""
    return full if FULL else default


def write_artifact(name: str, data: Any) -> None:
    """Store one measurement for hack/report (no-op unless RELIABILITY_ARTIFACTS is set)."""
    out = os.environ.get("RELIABILITY_ARTIFACTS")
    if not out:
        return
    path = Path(out) / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True, default=str))


@dataclasses.dataclass
class Reply:
    rc: int
    stdout: str
    stderr: str

    @property
    def out(self) -> dict[str, Any] | None:
        return json.loads(self.stdout) if self.stdout.strip() else None


def run_inprocess(env: dict[str, str], stdin: bytes, runtime: Any = None) -> Reply:
    from cni.main import run

    out, err = io.StringIO(), io.StringIO()
    rc = run(env, stdin, out, err, runtime=runtime, timeout=0)
    return Reply(rc, out.getvalue(), err.getvalue())


def run_shim(env: dict[str, str], stdin: bytes, timeout: float = 60) -> Reply:
    proc = subprocess.run(
        [str(SHIM)], input=stdin, env=env, capture_output=True, timeout=timeout, check=False
    )
    return Reply(
        proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")
    )


def new_netns() -> str:
    name = "st-ns-" + secrets.token_hex(3)
    subprocess.run(["ip", "netns", "add", name], check=True)
    return name


def del_netns(name: str) -> None:
    subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)


def links(netns: str | None = None) -> set[str]:
    """Link names (``ip -o link``) in the host or a named netns."""
    cmd = (
        ["ip", "-o", "link", "show"] if netns is None else ["ip", "-n", netns, "-o", "link", "show"]
    )
    out = subprocess.run(cmd, capture_output=True, text=True, check=False).stdout
    return {line.split(": ")[1].split("@")[0] for line in out.splitlines() if ": " in line}


def files_under(path: Path) -> list[str]:
    return (
        sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())
        if path.exists()
        else []
    )


KEPT_STATE = ("pci/vf_lock/", "tombstone/", "fallback-vlan/lock")
"""State files that outlive an attachment by design: per-VF lock files, the fallback's VLAN
claim lock (cni/fallback_vlan.py), and DEL's tombstone (an ADD that started before the DEL
finished must fail; pruned after 10 minutes)."""


def records_left(state_dir: Path) -> list[str]:
    """State files that would mean an attachment leaked (records, owners, quarantine...), once
    deferred DEL tails are done."""
    settle(state_dir)
    return [f for f in files_under(state_dir) if not f.startswith(KEPT_STATE)]


def vlan_links() -> list[str]:
    """8021q sub-interfaces in the host (``ip -d link`` says ``vlan protocol``)."""
    out = subprocess.run(
        ["ip", "-o", "-d", "link", "show", "type", "vlan"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    return [line.split(": ")[1] for line in out.splitlines() if ": " in line]


@dataclasses.dataclass
class Node:
    """One emulated SR-IOV host (veth-backed VFs), its state/IPAM dirs and a macvlan master."""

    root: Path
    tmp: Path
    tag: str
    spec: Any
    nl: Any

    @property
    def state_dir(self) -> Path:
        return self.tmp / "state"

    @property
    def ipam_dir(self) -> Path:
        return self.tmp / "ipam"

    @property
    def pf(self) -> str:
        return f"{self.spec.pf_prefix}0"

    @property
    def master(self) -> str:
        """A host link for fallback macvlans (the emulated PF netdev)."""
        return self.pf

    def host(self) -> Any:
        from sriov.host import open_host

        h = open_host(self.root, self.nl)
        h.refresh()
        return h

    def vfs(self) -> list[Any]:
        inv = self.host().sysfs.inventory()
        return sorted(inv.vfs_of(inv.pfs[0].address), key=lambda v: v.index)

    def kernel_vfs(self) -> list[Any]:
        return [v for v in self.vfs() if v.driver_kind == "kernel"]

    def conf(
        self,
        pci: str | None = None,
        *,
        version: str = "1.1.0",
        subnet: str = "10.77.0.0/16",
        fallback: bool = False,
        **keys: Any,
    ) -> dict[str, Any]:
        conf: dict[str, Any] = {
            "cniVersion": version,
            "name": f"st-{self.tag}",
            "type": "sriov",
            "ipam": {
                "type": "host-local",
                "dataDir": str(self.ipam_dir),
                "ranges": [[{"subnet": subnet}]],
            },
            **keys,
        }
        if pci is not None:
            conf["deviceID"] = pci
        if fallback:
            conf["fallback"] = {"type": "macvlan", "master": self.master}
        return conf

    def env(
        self, command: str, cid: str, netns: str, ifname: str = "net1", **extra: str
    ) -> dict[str, str]:
        env = {
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": cid,
            "CNI_NETNS": netns,
            "CNI_IFNAME": ifname,
            "CNI_PATH": CNI_BIN,
            "PATH": BASE_PATH,
            "SRIOV_SYSFS_ROOT": str(self.root),
            "SRIOV_CNI_STATE_DIR": str(self.state_dir),
            "SRIOV_CNI_AGENT_SOCKET": str(self.tmp / "no-agent.sock"),
        }
        env.update(extra)
        return env

    def leases(self) -> list[str]:
        net = self.ipam_dir / f"st-{self.tag}"
        return sorted(p.name for p in net.iterdir() if p.name[0].isdigit()) if net.is_dir() else []

    def vf_view(self, vf_index: int) -> dict[str, Any]:
        """What a user checks on a VF: host netdev name, MAC, MTU and the PF-side settings
        (after any deferred restore)."""
        settle(self.state_dir)
        vf = next(v for v in self.vfs() if v.index == vf_index)
        link = self.nl.link(vf.netdev) if vf.netdev else None
        admin = self.host().vf_admin.read(self.pf, vf_index)
        return {
            "netdev": vf.netdev,
            "mac": link.mac if link else None,
            "mtu": link.mtu if link else None,
            "pf": dataclasses.asdict(admin),
        }


def emulated_node(tmp_path: Path, vfs: int = 3, vfio: int = 0) -> Iterator[Node]:
    from sriov.emulate import host as emu_host
    from sriov.emulate.spec import EmulationSpec, Profile
    from sriov.netlink import Netlink

    tag = secrets.token_hex(2)
    spec = EmulationSpec(
        pfs=1,
        vfs=vfs,
        profile=Profile.IGB,
        vfio=vfio,
        pf_prefix=f"st-{tag}p",
        wire_prefix=f"st-{tag}w",
        bridge=f"st-{tag}b",
    )
    root = tmp_path / "host"
    nl = Netlink()
    emu_host.up(root, spec, nl)
    try:
        yield Node(root=root, tmp=tmp_path, tag=tag, spec=spec, nl=nl)
    finally:
        try:
            emu_host.down(root, nl)
        finally:
            nl.close()


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    require_root()
    yield from emulated_node(tmp_path)


@pytest.fixture
def pod() -> Iterator[str]:
    """A pod netns; yields its path (/var/run/netns/<name>)."""
    require_root()
    name = new_netns()
    try:
        yield f"/var/run/netns/{name}"
    finally:
        del_netns(name)


def cid() -> str:
    return "st" + secrets.token_hex(8)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print the fault-injection matrix and store it for hack/report."""
    if not FAULT_MATRIX:
        return
    rows = [{"process": k[0], "after": k[1], "outcome": v} for k, v in FAULT_MATRIX.items()]
    write_artifact("fault_matrix", rows)
    tr = terminalreporter
    tr.section("fault-injection matrix (SIGKILL, then DEL)")
    width = max(len(r["after"]) for r in rows)
    for r in rows:
        tr.write_line(f"{r['process']:<14} after {r['after']:<{width}}  {r['outcome']}")
