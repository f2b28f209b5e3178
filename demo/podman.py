"""podman 4.x with its CNI backend as a real container runtime, all state under one work dir.

Measured needs on our Firecracker/Debian hosts: root, ``network_backend = "cni"``, runc,
``--cgroup-manager cgroupfs``, explicit ``--ulimit nofile/nproc`` (the VM has no
CAP_SYS_RESOURCE, so runc cannot raise podman's default limits), the ``vfs`` storage driver (no
overlay mounts to leak) and a busybox-static rootfs loaded with ``podman import``. Nothing under
/etc is touched: ``CONTAINERS_CONF`` points at a containers.conf written into the work dir.

podman passes only ``K8S_POD_NAME`` = the container name in ``CNI_ARGS`` (no namespace).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import logging
import os
import shutil
import signal
import subprocess
import tarfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

IMAGE = "localhost/sriov-demo-busybox:latest"
BUSYBOX = Path("/bin/busybox")
APPLETS = ("sh", "ip", "ping", "ifconfig", "sleep", "cat", "ls", "true", "grep")
ULIMITS = ("--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024")
COMMAND_TIMEOUT = 60.0


class PodmanError(Exception):
    """A podman command failed; the message carries its argv tail and stderr."""


def busybox_rootfs_tar(busybox: Path = BUSYBOX) -> bytes:
    """A minimal rootfs: /bin/busybox plus applet symlinks and the usual empty mount points."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for directory in ("bin", "etc", "proc", "sys", "dev", "tmp", "run"):
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        tar.add(str(busybox), arcname="bin/busybox")
        for applet in APPLETS:
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type, info.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(info)
    return buf.getvalue()


def containers_conf(plugin_dirs: Sequence[Path], network_dir: Path) -> str:
    dirs = ", ".join(json.dumps(str(d)) for d in plugin_dirs)
    return (
        "[network]\n"
        'network_backend = "cni"\n'
        f"cni_plugin_dirs = [{dirs}]\n"
        f"network_config_dir = {json.dumps(str(network_dir))}\n"
        "[engine]\n"
        'runtime = "runc"\n'
        'cgroup_manager = "cgroupfs"\n'
        'events_logger = "none"\n'
    )


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class PodmanSetup:
    workdir: Path
    """Holds storage, run root, tmp dir, containers.conf and the network configs."""
    plugin_dirs: tuple[Path, ...]
    """CNI plugin dirs, ours first (the ``sriov`` shim), then /usr/lib/cni."""
    env: Mapping[str, str] = dataclasses.field(default_factory=dict)
    """Extra environment for podman and so for the CNI plugins it runs."""
    podman: str = "podman"


class Podman:
    name = "podman"
    passes_pod_namespace = False
    """podman's CNI_ARGS carry only ``K8S_POD_NAME`` (the container name), no namespace."""

    def __init__(self, setup: PodmanSetup) -> None:
        self.setup = setup
        self.network_dir = setup.workdir / "networks"
        self.conf_path = setup.workdir / "containers.conf"
        self._containers: list[str] = []
        self.last: subprocess.CompletedProcess[str] | None = None
        """The latest podman command's result (podman reports a failed CNI DEL on stderr only)."""

    # ------------------------------------------------------------------ plumbing
    def _argv(self, *args: str) -> list[str]:
        w = self.setup.workdir
        return [self.setup.podman, "--root", str(w / "storage"), "--runroot", str(w / "run"),
                "--tmpdir", str(w / "tmp"), "--storage-driver", "vfs",
                "--cgroup-manager", "cgroupfs", *args]

    def _env(self) -> dict[str, str]:
        return {**os.environ, **self.setup.env, "CONTAINERS_CONF": str(self.conf_path)}

    def cmd(self, *args: str, check: bool = True, timeout: float = COMMAND_TIMEOUT,
            input: str | None = None) -> subprocess.CompletedProcess[str]:
        argv = self._argv(*args)
        log.debug("podman %s", " ".join(args))
        proc = subprocess.run(argv, input=input,
                              capture_output=True, text=True, env=self._env(), timeout=timeout,
                              check=False)
        self.last = proc
        if check and proc.returncode != 0:
            raise PodmanError(f"podman {' '.join(args[:3])} failed (exit {proc.returncode}): "
                              f"{proc.stderr.strip() or proc.stdout.strip()}")
        return proc

    # ------------------------------------------------------------------ lifecycle
    def prepare(self) -> None:
        """Write containers.conf and import the busybox image."""
        self.network_dir.mkdir(parents=True, exist_ok=True)
        (self.setup.workdir / "tmp").mkdir(parents=True, exist_ok=True)
        self.conf_path.write_text(containers_conf(self.setup.plugin_dirs, self.network_dir))
        tar = self.setup.workdir / "busybox-rootfs.tar"
        tar.write_bytes(busybox_rootfs_tar())
        self.cmd("import", str(tar), IMAGE)
        tar.unlink()

    def probe(self) -> str | None:
        """None when podman can run a container here, else the reason."""
        if shutil.which(self.setup.podman) is None:
            return f"{self.setup.podman} is not installed"
        if not BUSYBOX.is_file():
            return f"{BUSYBOX} missing (apt install busybox-static)"
        try:
            self.prepare()
            version = self.cmd("--version").stdout.strip()
            self.cmd("run", "--rm", *ULIMITS, "--network", "none", IMAGE, "true")
        except (PodmanError, OSError, subprocess.TimeoutExpired) as e:
            return f"podman cannot run a container here: {e}"
        log.info("podman usable: %s", version)
        return None

    def add_network(self, conflist: Mapping[str, Any]) -> str:
        name = str(conflist["name"])
        path = self.network_dir / f"{name}.conflist"
        path.write_text(json.dumps(conflist, indent=2) + "\n")
        return name

    def run(self, name: str, network: str) -> str:
        """Start a long-running container attached to ``network``; returns its id."""
        self._containers.append(name)
        proc = self.cmd("run", "-d", "--name", name, *ULIMITS, "--network", network, IMAGE,
                        "sleep", "3600")
        return proc.stdout.strip()

    def exec(self, name: str, *argv: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        return self.cmd("exec", name, *argv, check=check)

    def inspect(self, name: str, fmt: str) -> str:
        return self.cmd("inspect", "--format", fmt, name).stdout.strip()

    def pid(self, name: str) -> int:
        return int(self.inspect(name, "{{.State.Pid}}"))

    def netns_path(self, name: str) -> str:
        return self.inspect(name, "{{.NetworkSettings.SandboxKey}}")

    def kill_netns(self, name: str) -> None:
        """Destroy the container's netns behind podman's back (no CNI DEL): drop the
        /run/netns bind mount and SIGKILL the container's process, its last reference."""
        netns = Path(self.netns_path(name))
        pid = self.pid(name)
        if netns.parent == Path("/run/netns"):
            subprocess.run(["ip", "netns", "del", netns.name], check=False, capture_output=True)
        if pid > 0:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def remove(self, name: str) -> None:
        """``podman rm -f``: stops the container and runs CNI DEL for its networks."""
        if name in self._containers:
            self._containers.remove(name)
        self.cmd("rm", "-f", "-t", "0", name)

    def close(self) -> None:
        """Remove every container we started, then the whole work dir (storage included)."""
        if not self.conf_path.exists():
            return  # never prepared, or already closed
        for name in list(self._containers):
            try:
                self.remove(name)
            except PodmanError as e:
                log.warning("%s", e)
        self.cmd("rm", "-a", "-f", "-t", "0", check=False)
        _unmount_under(self.setup.workdir)
        shutil.rmtree(self.setup.workdir, ignore_errors=True)


def _unmount_under(directory: Path) -> None:
    """Lazy-unmount anything podman left mounted below ``directory`` (deepest first)."""
    prefix = str(directory.resolve()) + "/"
    try:
        mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
    except OSError:
        return
    for target in sorted((m for m in mounts if m.startswith(prefix)), key=len, reverse=True):
        log.warning("unmounting leftover podman mount %s", target)
        subprocess.run(["umount", "-l", target], check=False, capture_output=True)
