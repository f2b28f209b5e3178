"""Run a :class:`~demo.daemonset_plan.PodPlan` under podman as kubelet would: prepare the node's
host paths and kubelet-written files, check the image against ``imagePullPolicy`` (no registry:
the image must be in the store), run the initContainers one after another (each must exit 0),
start the containers, answer probes, stop with the grace period.

The podman store is the one hack/build-image builds into (hack/image/podman-store): same root,
runroot and driver, so the image the DaemonSet names is found locally.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import resource
import socket
import stat
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from demo.daemonset_plan import ContainerPlan, ManifestError, PodPlan, Probe, ProbeKind

log = logging.getLogger(__name__)

def _ulimits() -> tuple[str, ...]:
    """Explicit, at most this process's hard limits: this VM has no CAP_SYS_RESOURCE, so runc
    cannot raise podman's defaults above them."""
    nofile = min(resource.getrlimit(resource.RLIMIT_NOFILE)[1], 1 << 20)
    nproc = min(resource.getrlimit(resource.RLIMIT_NPROC)[1], 4096)  # (65536 is refused here)
    return ("--ulimit", f"nofile={nofile}:{nofile}", "--ulimit", f"nproc={nproc}:{nproc}")


COMMAND_TIMEOUT = 300.0
LABEL = "io.sriov-k8s.harness.pod"


class HarnessError(Exception):
    """The pod could not be run as the manifest says (the message carries podman's words)."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Store:
    """podman global flags for the store hack/build-image uses (same env overrides)."""

    root: Path
    runroot: Path
    driver: str

    @classmethod
    def default(cls) -> Store:
        cache = Path(os.environ.get("SRIOV_IMAGE_CACHE")
                     or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
                     / "sriov-k8s" / "image")
        return cls(root=cache / "storage",
                   runroot=Path(os.environ.get("SRIOV_IMAGE_RUNROOT",
                                               "/run/sriov-k8s-image/podman")),
                   driver=os.environ.get("SRIOV_IMAGE_STORAGE_DRIVER", "overlay"))

    def argv(self, *args: str) -> list[str]:
        return ["podman", "--root", str(self.root), "--runroot", str(self.runroot),
                "--storage-driver", self.driver, "--cgroup-manager", "cgroupfs",
                "--events-backend", "none", *args]

    def run(self, *args: str, check: bool = True, timeout: float = COMMAND_TIMEOUT,
            ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(self.argv(*args), capture_output=True, text=True, timeout=timeout,
                              check=False)
        if check and proc.returncode != 0:
            raise HarnessError(f"podman {' '.join(args[:2])} failed (exit {proc.returncode}): "
                               f"{(proc.stderr or proc.stdout).strip()[-2000:]}")
        return proc

    def has_image(self, image: str) -> bool:
        return self.run("image", "exists", image, check=False).returncode == 0

    def image_config(self, image: str) -> tuple[list[str], list[str]]:
        """The image's ENTRYPOINT and CMD."""
        out = json.loads(self.run("image", "inspect", image).stdout)[0]
        config = out.get("Config") or {}
        return list(config.get("Entrypoint") or []), list(config.get("Cmd") or [])


@dataclasses.dataclass(frozen=True, slots=True)
class ProbeResult:
    ok: bool
    detail: str


def k8s_argv(container: ContainerPlan, entrypoint: Sequence[str], cmd: Sequence[str]) -> list[str]:
    """Kubernetes' rule: ``command`` replaces ENTRYPOINT (and drops CMD), ``args`` replaces CMD."""
    if container.entrypoint is not None:
        return [*container.entrypoint, *(container.args or ())]
    return [*entrypoint, *(cmd if container.args is None else container.args)]


def run_argv(plan: PodPlan, container: ContainerPlan, argv: Sequence[str], name: str,
             *, detach: bool) -> list[str]:
    """``podman run`` arguments for one container of the pod (pure)."""
    if not plan.host_network:
        raise ManifestError(f"{container.name}: hostNetwork: false needs a pod network; "
                            "the harness runs node agents (hostNetwork) only")
    if not argv:
        raise ManifestError(f"{container.name}: no command: neither the manifest nor the image "
                            "names one")
    out = ["run", "--name", name, "--label", f"{LABEL}={plan.name}", "--pull", "never",
           "--network", "host", "--hostname", plan.node_name, *_ulimits(),
           "--stop-timeout", str(plan.stop_timeout_s)]
    if detach:
        out.append("-d")
    if plan.host_pid:
        out += ["--pid", "host"]
    if container.privileged:
        out.append("--privileged")
    for key, value in container.env:
        out += ["--env", f"{key}={value}"]
    for mount in container.mounts:
        options = ["ro" if mount.read_only else "rw", mount.propagation]
        out += ["--volume", f"{mount.source}:{mount.target}:{','.join(options)}"]
    if container.memory_limit is not None:
        out += ["--memory", str(container.memory_limit)]
    if container.cpu_limit is not None:
        out += ["--cpus", f"{container.cpu_limit:g}"]
    if container.working_dir:
        out += ["--workdir", container.working_dir]
    out += ["--entrypoint", json.dumps([argv[0]]), container.image, *argv[1:]]
    return out


def prepare_node(plan: PodPlan) -> None:
    """hostPath types as kubelet checks/creates them; the files kubelet writes for the pod."""
    for host_dir in plan.host_dirs:
        path, kind = host_dir.path, host_dir.type
        if kind == "DirectoryOrCreate":
            path.mkdir(mode=0o755, parents=True, exist_ok=True)
        elif kind == "FileOrCreate":
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch(mode=0o644, exist_ok=True)
        elif kind:
            tests = {"Directory": stat.S_ISDIR, "File": stat.S_ISREG, "Socket": stat.S_ISSOCK,
                     "CharDevice": stat.S_ISCHR, "BlockDevice": stat.S_ISBLK}
            try:
                ok = tests[kind](path.stat().st_mode)
            except OSError:
                ok = False
            if not ok:
                raise HarnessError(f"hostPath {path} is not a {kind} "
                                   "(kubelet would not start the pod)")
    for path, text in plan.files:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text)
        tmp.rename(path)


class PodRunner:
    """One pod of the DaemonSet on the node, run by podman."""

    def __init__(self, plan: PodPlan, store: Store, *, suffix: str = "") -> None:
        self.plan = plan
        self.store = store
        self.suffix = suffix
        self.created_at = 0.0
        """``time.monotonic()`` when :meth:`start` began (before the initContainers)."""
        self.started_at: dict[str, float] = {}
        """Container name -> ``time.monotonic()`` just before its ``podman run``."""
        self._running: list[str] = []

    def container_name(self, container: ContainerPlan) -> str:
        return f"{self.plan.name}{self.suffix}-{container.name}"

    def _check_image(self, container: ContainerPlan) -> None:
        if container.pull_policy == "Always":
            raise ManifestError(f"{container.name}: imagePullPolicy Always needs a registry")
        if not self.store.has_image(container.image):
            raise HarnessError(f"{container.name}: image {container.image} is not in the store "
                               f"{self.store.root} and the harness pulls nothing "
                               "(hack/build-image)")

    def _argv(self, container: ContainerPlan, *, detach: bool) -> list[str]:
        self._check_image(container)
        entrypoint, cmd = self.store.image_config(container.image)
        return run_argv(self.plan, container, k8s_argv(container, entrypoint, cmd),
                        self.container_name(container), detach=detach)

    def run_init_containers(self) -> dict[str, str]:
        """Each in order, to completion; returns name -> its output. A failure stops the pod."""
        outputs = {}
        for container in self.plan.init_containers:
            name = self.container_name(container)
            self.store.run("rm", "-f", name, check=False)
            argv = self._argv(container, detach=False)
            proc = self.store.run(*argv, check=False)
            self.store.run("rm", "-f", name, check=False)
            if proc.returncode != 0:
                raise HarnessError(f"initContainer {container.name} exited {proc.returncode}: "
                                   f"{(proc.stderr + proc.stdout).strip()[-3000:]}")
            outputs[container.name] = proc.stdout + proc.stderr
        return outputs

    def start(self) -> None:
        self.created_at = time.monotonic()
        prepare_node(self.plan)
        self.run_init_containers()
        for container in self.plan.containers:
            name = self.container_name(container)
            self.store.run("rm", "-f", name, check=False)
            argv = self._argv(container, detach=True)
            self.started_at[container.name] = time.monotonic()
            self.store.run(*argv)
            self._running.append(name)

    def logs(self, container: ContainerPlan) -> str:
        proc = self.store.run("logs", self.container_name(container), check=False)
        return proc.stdout + proc.stderr

    def running(self, container: ContainerPlan) -> bool:
        proc = self.store.run("inspect", "--format", "{{.State.Running}}",
                              self.container_name(container), check=False)
        return proc.stdout.strip() == "true"

    def probe(self, container: ContainerPlan, probe: Probe) -> ProbeResult:
        """One probe attempt, as kubelet's prober makes it (hostNetwork: on the node's IP)."""
        if probe.kind is ProbeKind.EXEC:
            try:
                proc = self.store.run("exec", self.container_name(container), *probe.command,
                                      check=False, timeout=probe.timeout_s + 10)
            except subprocess.TimeoutExpired:
                return ProbeResult(False, "exec timed out")
            return ProbeResult(proc.returncode == 0, f"exit {proc.returncode}")
        if probe.kind is ProbeKind.TCP_SOCKET:
            try:
                with socket.create_connection(("127.0.0.1", probe.port), timeout=probe.timeout_s):
                    return ProbeResult(True, f"connected to {probe.port}")
            except OSError as e:
                return ProbeResult(False, str(e))
        if probe.kind is ProbeKind.HTTP_GET:
            url = f"{probe.scheme.lower()}://127.0.0.1:{probe.port}{probe.path}"
            try:
                with urllib.request.urlopen(url, timeout=probe.timeout_s) as response:
                    return ProbeResult(200 <= response.status < 400, f"HTTP {response.status}")
            except (urllib.error.URLError, OSError) as e:
                return ProbeResult(False, str(e))
        return _grpc_probe(probe)

    def wait_probe(self, container: ContainerPlan, probe: Probe, deadline_s: float) -> ProbeResult:
        """kubelet's schedule: initialDelaySeconds, then every periodSeconds until
        successThreshold successes in a row (or the deadline)."""
        start = self.started_at.get(container.name, time.monotonic())
        time.sleep(max(0.0, start + probe.initial_delay_s - time.monotonic()))
        end = time.monotonic() + deadline_s
        streak, result = 0, ProbeResult(False, "not probed")
        while time.monotonic() < end:
            result = self.probe(container, probe)
            streak = streak + 1 if result.ok else 0
            if streak >= probe.success_threshold:
                return result
            time.sleep(min(probe.period_s, 1.0))  # poll faster than kubelet: same verdict, sooner
        return result

    def stop(self) -> None:
        """Delete the pod: SIGTERM, the grace period, then SIGKILL; containers removed."""
        for name in reversed(self._running):
            self.store.run("rm", "-f", "-t", str(self.plan.stop_timeout_s), name, check=False)
        self._running.clear()

    def kill(self) -> None:
        """Power loss: SIGKILL, no grace."""
        for name in reversed(self._running):
            self.store.run("rm", "-f", "-t", "0", name, check=False)
        self._running.clear()


def _grpc_probe(probe: Probe) -> ProbeResult:
    """grpc.health.v1.Health/Check with the raw protobuf bytes (field 1: service; reply field 1:
    status, 1 = SERVING), so no generated health stubs are needed."""
    import grpc

    service = probe.service.encode()
    request = (b"\x0a" + bytes([len(service)]) + service) if service else b""
    with grpc.insecure_channel(f"127.0.0.1:{probe.port}") as channel:
        call = channel.unary_unary("/grpc.health.v1.Health/Check",
                                   request_serializer=lambda b: b,
                                   response_deserializer=lambda b: b)
        try:
            reply = call(request, timeout=probe.timeout_s)
        except grpc.RpcError as e:
            return ProbeResult(False, f"gRPC {e.code()}")
    return ProbeResult(reply == b"\x08\x01", f"health reply {reply!r}")
