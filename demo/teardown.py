"""``sriovctl demo --down``: tear down a demo left up by ``--keep`` (best effort, idempotent)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import TextIO

from demo.netns_runtime import NETNS_DIR
from demo.podman import Podman, PodmanSetup
from demo.processes import wait_until
from demo.stack import Layout, Manifest, is_our_process
from sriov.emulate import host as emulated
from sriov.netlink import Netlink


def down(workdir: Path, out: TextIO) -> int:
    layout = Layout(workdir=workdir)
    manifest = Manifest.load(layout)
    if manifest is None and not layout.emu.exists():
        out.write(f"no demo found in {workdir}\n")
        return 0
    if manifest is not None:
        if manifest.runtime == "podman" and (layout.podman / "containers.conf").exists():
            podman = Podman(PodmanSetup(workdir=layout.podman, plugin_dirs=layout.plugin_dirs,
                                        env=layout.cni_env()))
            for pod in manifest.pods:
                podman.remove(pod)  # CNI DEL while the agent still runs
                out.write(f"removed pod {pod}\n")
            podman.close()
        for path in map(Path, manifest.netns):
            if path.parent == NETNS_DIR and path.exists():  # netns runtime pods
                subprocess.run(["ip", "netns", "del", path.name], check=False, capture_output=True)
                out.write(f"deleted netns {path.name}\n")
        for name, pid in manifest.pids.items():
            if pid and is_our_process(pid, manifest.argv.get(name, [])):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
                def gone(p: int = pid) -> bool:
                    return not Path(f"/proc/{p}").exists()

                if not wait_until(gone, 5.0):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                out.write(f"stopped {name} (pid {pid})\n")
    if emulated.host_is_emulated(layout.emu) or (layout.emu / "sys").exists():
        with Netlink() as nl:
            emulated.down(layout.emu, nl)  # removes VF pairs wherever they are (netns too)
        out.write(f"emulated host at {layout.emu} removed\n")
    shutil.rmtree(workdir, ignore_errors=True)
    out.write(f"demo in {workdir} is down\n")
    return 0
