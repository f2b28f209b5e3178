"""The pieces of the demo stack, each started and stopped on its own, all under one work dir.

Layout of ``workdir``: ``emu/`` (emulated host root), ``plugins/`` (device-plugin dir with the
simulated kubelet.sock), ``pod-resources/kubelet.sock``, ``devinfo/``, ``cni-bin/sriov`` (the
shim launcher from hack/install-cni), ``agent/cni.sock``, ``cni-state/``, ``ipam/``, ``podman/``,
``logs/`` and ``demo.json`` (what ``sriovctl demo --down`` needs to tear a kept demo down).
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

from demo.processes import Daemon

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG_DIR = REPO / "configs" / "demo"
INSTALL_CNI = REPO / "hack" / "install-cni"
REFERENCE_PLUGINS = Path("/usr/lib/cni")
MANIFEST = "demo.json"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Layout:
    workdir: Path

    @property
    def emu(self) -> Path:
        return self.workdir / "emu"

    @property
    def plugin_dir(self) -> Path:
        return self.workdir / "plugins"

    @property
    def pod_resources(self) -> Path:
        return self.workdir / "pod-resources" / "kubelet.sock"

    @property
    def devinfo(self) -> Path:
        return self.workdir / "devinfo"

    @property
    def cni_bin(self) -> Path:
        return self.workdir / "cni-bin"

    @property
    def agent_socket(self) -> Path:
        return self.workdir / "agent" / "cni.sock"

    @property
    def cni_state(self) -> Path:
        return self.workdir / "cni-state"

    @property
    def ipam(self) -> Path:
        return self.workdir / "ipam"

    @property
    def podman(self) -> Path:
        return self.workdir / "podman"

    @property
    def logs(self) -> Path:
        return self.workdir / "logs"

    @property
    def plugin_dirs(self) -> tuple[Path, ...]:
        return (self.cni_bin, REFERENCE_PLUGINS)

    def cni_env(self) -> dict[str, str]:
        """What the ``sriov`` shim needs (agent socket; standalone fallback settings)."""
        return {"SRIOV_CNI_AGENT_SOCKET": str(self.agent_socket),
                "SRIOV_SYSFS_ROOT": str(self.emu), "SRIOV_CNI_STATE_DIR": str(self.cni_state)}


def env_launcher(target: Path, env: dict[str, str]) -> str:
    """A tiny executable that sets ``env`` and execs ``target`` (pure; literals via repr).

    Runtimes do not hand their environment to every plugin run: podman's cleanup process
    (spawned by conmon, which gets a reduced environment) runs CNI DEL without our variables,
    so the demo's settings are baked into the plugin file the runtime executes."""
    return (f"#!{sys.executable} -IS\n"
            "# sriov-k8s demo: the sriov CNI shim with the demo's settings. Generated.\n"
            "import os\n"
            f"os.environ.update({env!r})\n"
            f"os.execv({str(target)!r}, [{str(target)!r}])\n")


def install_shim(layout: Layout) -> Path:
    """hack/install-cni into ``cni-bin/.shim/``, fronted by ``cni-bin/sriov`` carrying our env."""
    real = layout.cni_bin / ".shim"
    real.mkdir(parents=True, exist_ok=True)
    subprocess.run([str(INSTALL_CNI), str(real)], check=True, capture_output=True)
    launcher = layout.cni_bin / "sriov"
    launcher.write_text(env_launcher(real / "sriov", layout.cni_env()))
    launcher.chmod(0o755)
    return launcher


def device_plugin(layout: Layout, pools: Path) -> Daemon:
    argv = [sys.executable, "-m", "deviceplugin.cli", "--config", str(pools),
            "--plugin-dir", str(layout.plugin_dir), "--sysfs-root", str(layout.emu),
            "--devinfo-dir", str(layout.devinfo), "--log-level", "info"]
    return Daemon("sriov-device-plugin", argv, layout.logs / "device-plugin.log")


def cni_agent(layout: Layout) -> Daemon:
    argv = [sys.executable, "-m", "cni.agent", "--socket", str(layout.agent_socket),
            "--state-dir", str(layout.cni_state), "--sysfs-root", str(layout.emu),
            "--log-level", "info"]
    return Daemon("sriov-cni-agent", argv, layout.logs / "cni-agent.log")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Manifest:
    """What a kept demo left running, for ``sriovctl demo --down``."""

    runtime: str
    pids: dict[str, int]
    """Daemon name -> pid."""
    argv: dict[str, list[str]]
    """Daemon name -> argv (checked against /proc before killing: pids get reused)."""
    pods: list[str]
    netns: list[str] = dataclasses.field(default_factory=list)
    """The pods' netns paths (the netns runtime's are ours to delete)."""

    def save(self, layout: Layout) -> None:
        (layout.workdir / MANIFEST).write_text(json.dumps(dataclasses.asdict(self), indent=1))

    @classmethod
    def load(cls, layout: Layout) -> Manifest | None:
        try:
            raw = json.loads((layout.workdir / MANIFEST).read_text())
            return cls(runtime=str(raw["runtime"]), pids=dict(raw["pids"]),
                       argv=dict(raw["argv"]), pods=list(raw["pods"]),
                       netns=list(raw.get("netns", [])))
        except (OSError, ValueError, KeyError, TypeError):
            return None


def is_our_process(pid: int, argv: list[str]) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return [c.decode(errors="replace") for c in cmdline if c] == argv
