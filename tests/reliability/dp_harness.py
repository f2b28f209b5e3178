"""A real ``sriov-device-plugin`` process against the in-process kubelet simulator (no root)."""

from __future__ import annotations

import dataclasses
import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from deviceplugin.simulator import KubeletSimulator
from sriov.emulate.tree import PfSpec, SysfsTreeBuilder

DP_EXE = Path(sys.executable).parent / "sriov-device-plugin"
RESOURCE = "intel.com/st_net"
CONFIG = {"resourceList": [{"resourceName": "st_net", "selectors": [{"drivers": ["iavf"]}]}]}
VFS = 4


@dataclasses.dataclass
class DpStack:
    tmp: Path
    sim: KubeletSimulator
    proc: subprocess.Popen[bytes] | None = None

    @property
    def plugin_dir(self) -> Path:
        return self.tmp / "dp"

    @property
    def config(self) -> Path:
        return self.tmp / "etc" / "config.json"

    def start_plugin(self) -> subprocess.Popen[bytes]:
        self.proc = subprocess.Popen(
            [
                str(DP_EXE),
                "--config",
                str(self.config),
                "--plugin-dir",
                str(self.plugin_dir),
                "--sysfs-root",
                str(self.tmp / "host"),
                "--devinfo-dir",
                str(self.tmp / "devinfo"),
                "--log-level",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=(self.tmp / "dp.log").open("ab"),
        )
        return self.proc

    def stop_plugin(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def write_config(self, text: str) -> None:
        tmp = self.config.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(self.config)


def build_tree(root: Path, vfs: int = VFS) -> None:
    tree = SysfsTreeBuilder(root)
    tree.add_pf(
        PfSpec(
            address="0000:3b:00.0",
            ifname="stdp0",
            num_vfs=vfs,
            numa_node=0,
            vf_ifnames=tuple(f"stdp0v{i}" for i in range(vfs)),
        )
    )


@contextmanager
def device_plugin_stack(tmp: Path, *, start: bool = True) -> Iterator[DpStack]:
    build_tree(tmp / "host")
    (tmp / "etc").mkdir(exist_ok=True)
    (tmp / "etc" / "config.json").write_text(json.dumps(CONFIG))
    sim = KubeletSimulator(tmp / "dp", tmp / "pr" / "kubelet.sock")
    sim.start()
    stack = DpStack(tmp=tmp, sim=sim)
    try:
        if start:
            stack.start_plugin()
            if not sim.wait_until(lambda s: s.capacity(RESOURCE) == VFS, 30):
                raise AssertionError(
                    "device plugin did not register: " + (tmp / "dp.log").read_text()[-2000:]
                )
        yield stack
    finally:
        stack.stop_plugin()
        sim.stop()
