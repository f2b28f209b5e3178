"""A DaemonSet manifest turned into what kubelet would run on one node. Pure: dicts in, plan out.

:func:`plan_pod` reads the pod template of ``configs/k8s/daemonset.yaml`` (after an optional
RFC 6902 JSON patch, as ``kubectl patch --type=json`` applies it) and returns a :class:`PodPlan`:
per container the image, argv (``command``/``args`` with ``$(VAR)`` expansion), env (values and
``fieldRef``), mounts, privileges, limits and probes. Every key of the pod spec and of each
container is either mapped, or listed in ``IGNORED_*`` with why it has no effect on one node
without a cluster, or refused with :class:`ManifestError` naming it: the harness never runs
something the manifest did not say, and never silently drops what it did say.

Volumes: a ``hostPath`` is the node's path under ``node_root``, except the paths in
``SHARED_HOST_PATHS``, which belong to the kernel and the container runtime that this machine
really provides to the emulated node (``/sys``, ``/dev``, ``/proc`` and the runtime's netns dir).
A ``configMap`` volume becomes files kubelet-style under the pod's volume dir (read-only).
"""

from __future__ import annotations

import copy
import dataclasses
import enum
import re
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

SHARED_HOST_PATHS = {
    "/sys": "the node's kernel is this machine's kernel (the emulated tree is elsewhere)",
    "/dev": "device nodes of this machine's kernel",
    "/proc": "processes of this machine (hostPID)",
    "/run/netns": "where this machine's container runtime (podman) puts pod netns",
    "/var/run/netns": "the same dir as /run/netns (/var/run is /run)",
}
IGNORED_POD_KEYS = {
    "serviceAccountName": "the harness mounts a token for the API server it runs",
    "dnsPolicy": "no cluster DNS on one node; hostNetwork uses the node's resolv.conf",
    "priorityClassName": "scheduling: one pod on one node",
    "nodeSelector": "scheduling: the harness is the node",
    "tolerations": "scheduling: the harness is the node",
    "affinity": "scheduling: the harness is the node",
    "terminationGracePeriodSeconds": "mapped: stop timeout",
}
MAPPED_POD_KEYS = {"hostNetwork", "hostPID", "containers", "initContainers", "volumes",
                   "automountServiceAccountToken", "restartPolicy"}
IGNORED_CONTAINER_KEYS = {
    "ports": "hostNetwork: the port is the node's; probes resolve named ports from here",
    "terminationMessagePath": "kubelet bookkeeping",
    "terminationMessagePolicy": "kubelet bookkeeping",
}
MAPPED_CONTAINER_KEYS = {"name", "image", "imagePullPolicy", "command", "args", "env",
                         "securityContext", "resources", "volumeMounts", "livenessProbe",
                         "readinessProbe", "startupProbe", "ports", "workingDir"}
PROPAGATION = {None: "rprivate", "None": "rprivate", "HostToContainer": "rslave",
               "Bidirectional": "rshared"}
HOST_PATH_TYPES = {"", "DirectoryOrCreate", "Directory", "FileOrCreate", "File", "Socket",
                   "CharDevice", "BlockDevice"}
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
_OPS = "add, replace, remove, test"
_VAR = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


class ManifestError(Exception):
    """The manifest asks for something the harness does not map (names the key)."""


class ProbeKind(enum.Enum):
    EXEC = "exec"
    HTTP_GET = "httpGet"
    TCP_SOCKET = "tcpSocket"
    GRPC = "grpc"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Probe:
    kind: ProbeKind
    command: tuple[str, ...] = ()
    port: int = 0
    path: str = "/"
    scheme: str = "HTTP"
    service: str = ""
    initial_delay_s: float = 0.0
    period_s: float = 10.0
    timeout_s: float = 1.0
    failure_threshold: int = 3
    success_threshold: int = 1


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Mount:
    source: Path
    target: str
    read_only: bool
    propagation: str
    """podman bind propagation: rprivate, rslave (HostToContainer) or rshared (Bidirectional)."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class HostPathDir:
    path: Path
    type: str
    """The hostPath ``type``: checked (``Directory``) or created (``DirectoryOrCreate``)."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ContainerPlan:
    name: str
    image: str
    pull_policy: str
    entrypoint: tuple[str, ...] | None
    """``command`` (replaces the image's ENTRYPOINT), after $(VAR) expansion; None = image's."""
    args: tuple[str, ...] | None
    """``args`` (replaces CMD); None = the image's CMD (unless ``command`` is set: then none)."""
    env: tuple[tuple[str, str], ...]
    privileged: bool
    mounts: tuple[Mount, ...]
    memory_limit: int | None
    cpu_limit: float | None
    working_dir: str | None
    liveness: Probe | None
    readiness: Probe | None
    startup: Probe | None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class PodPlan:
    name: str
    namespace: str
    node_name: str
    host_network: bool
    host_pid: bool
    init_containers: tuple[ContainerPlan, ...]
    containers: tuple[ContainerPlan, ...]
    host_dirs: tuple[HostPathDir, ...]
    files: tuple[tuple[Path, str], ...]
    """Files kubelet writes for the pod (configMap items, service-account token): path, text."""
    stop_timeout_s: int


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ServiceAccount:
    """What kubelet projects into a pod for in-cluster access to the API server."""

    token: str
    ca_crt: str
    api_host: str
    api_port: int


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Node:
    root: Path
    """The node's file system root for hostPath volumes (a temp dir)."""
    name: str
    pod_name: str
    pod_uid: str
    host_ip: str = "127.0.0.1"
    configmaps: Mapping[str, Mapping[str, str]] = dataclasses.field(default_factory=dict)
    """ConfigMap name -> data, as applied (configs/k8s/configmap.yaml)."""
    service_account: ServiceAccount | None = None


# ---------------------------------------------------------------- JSON patch (RFC 6902 subset)

def _pointer(doc: Any, path: str) -> tuple[Any, str]:
    parts = [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]]
    if not parts:
        raise ManifestError(f"patch path {path!r} names the whole document")
    parent = doc
    for part in parts[:-1]:
        parent = parent[int(part)] if isinstance(parent, list) else parent[part]
    return parent, parts[-1]


def json_patch(doc: Mapping[str, Any], ops: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """``add``/``replace``/``remove``/``test`` of RFC 6902 (``kubectl patch --type=json``)."""
    out: dict[str, Any] = copy.deepcopy(dict(doc))
    for op in ops:
        kind, path = op.get("op"), str(op.get("path", ""))
        try:
            parent, key = _pointer(out, path)
            if isinstance(parent, list):
                index = len(parent) if key == "-" else int(key)
                if kind == "add":
                    parent.insert(index, copy.deepcopy(op["value"]))
                elif kind == "replace":
                    parent[index] = copy.deepcopy(op["value"])
                elif kind == "remove":
                    del parent[index]
                elif kind == "test":
                    if parent[index] != op["value"]:
                        raise ManifestError(f"patch test {path}: is {parent[index]!r}, "
                                            f"expected {op['value']!r}")
                else:
                    raise ManifestError(f"patch op {kind!r} is not supported ({_OPS})")
            elif kind in ("add", "replace"):
                if kind == "replace" and key not in parent:
                    raise ManifestError(f"patch: replace of missing {path}")
                parent[key] = copy.deepcopy(op["value"])
            elif kind == "remove":
                del parent[key]
            elif kind == "test":
                if parent[key] != op["value"]:
                    raise ManifestError(f"patch test {path}: is {parent[key]!r}, "
                                        f"expected {op['value']!r}")
            else:
                raise ManifestError(f"patch op {kind!r} is not supported ({_OPS})")
        except (KeyError, IndexError, ValueError, TypeError) as e:
            raise ManifestError(f"patch {kind} {path}: no such location ({e})") from e
    return out


# ---------------------------------------------------------------- pure mapping

def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes ``$(VAR)`` expansion: unknown references stay as written, ``$$`` is ``$``."""
    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))
    return _VAR.sub(sub, text)


def host_source(node: Node, path: str) -> Path:
    """Where the node's ``path`` is on this machine."""
    clean = str(PurePosixPath(path))
    if not clean.startswith("/") or ".." in PurePosixPath(clean).parts:
        raise ManifestError(f"hostPath {path!r} must be an absolute path without '..'")
    for shared in SHARED_HOST_PATHS:
        if clean == shared or clean.startswith(shared + "/"):
            return Path(clean)
    return node.root / clean.lstrip("/")


def quantity(value: str | int | float) -> float:
    """A Kubernetes resource quantity (``250m``, ``64Mi``, ``1``) as a number."""
    text = str(value)
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 1e3, "M": 1e6, "G": 1e9,
             "m": 1e-3}
    for suffix, factor in units.items():
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * factor
    try:
        return float(text)
    except ValueError:
        raise ManifestError(f"resource quantity {value!r} is not understood") from None


def _field_ref(path: str, node: Node, namespace: str) -> str:
    values = {"spec.nodeName": node.name, "metadata.name": node.pod_name,
              "metadata.namespace": namespace, "metadata.uid": node.pod_uid,
              "status.hostIP": node.host_ip, "status.podIP": node.host_ip}
    if path not in values:
        raise ManifestError(f"env fieldRef {path!r} is not supported ({', '.join(values)})")
    return values[path]


def _env(container: Mapping[str, Any], node: Node, namespace: str,
         extra: Sequence[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    env: dict[str, str] = dict(extra)
    for item in container.get("env", []):
        name = item["name"]
        if "value" in item:
            env[name] = expand(str(item["value"]), env)
        elif set(item.get("valueFrom", {})) == {"fieldRef"}:
            env[name] = _field_ref(item["valueFrom"]["fieldRef"]["fieldPath"], node, namespace)
        else:
            raise ManifestError(f"{container['name']}: env {name}: only value and fieldRef "
                                "are supported")
    if container.get("envFrom"):
        raise ManifestError(f"{container['name']}: envFrom is not supported")
    return tuple(env.items())


def _port(value: int | str, container: Mapping[str, Any]) -> int:
    if isinstance(value, int):
        return value
    for port in container.get("ports", []):
        if port.get("name") == value:
            return int(port["containerPort"])
    raise ManifestError(f"{container['name']}: probe port {value!r} is not a declared port name")


def _probe(spec: Mapping[str, Any] | None, container: Mapping[str, Any]) -> Probe | None:
    if spec is None:
        return None
    kinds = [k for k in ProbeKind if k.value in spec]
    if len(kinds) != 1:
        raise ManifestError(f"{container['name']}: a probe needs exactly one of exec, httpGet, "
                            f"tcpSocket, grpc; got {sorted(spec)}")
    kind, handler = kinds[0], spec[kinds[0].value]
    timing = dict(initial_delay_s=float(spec.get("initialDelaySeconds", 0)),
                  period_s=float(spec.get("periodSeconds", 10)),
                  timeout_s=float(spec.get("timeoutSeconds", 1)),
                  failure_threshold=int(spec.get("failureThreshold", 3)),
                  success_threshold=int(spec.get("successThreshold", 1)))
    if kind is ProbeKind.EXEC:
        return Probe(kind=kind, command=tuple(handler["command"]), **timing)  # type: ignore[arg-type]
    if handler.get("host") or handler.get("httpHeaders"):
        raise ManifestError(f"{container['name']}: probe host/httpHeaders are not supported")
    port = _port(handler["port"], container)
    if kind is ProbeKind.HTTP_GET:
        return Probe(kind=kind, port=port, path=str(handler.get("path", "/")),
                     scheme=str(handler.get("scheme", "HTTP")), **timing)  # type: ignore[arg-type]
    if kind is ProbeKind.GRPC:
        return Probe(kind=kind, port=port, service=str(handler.get("service", "")), **timing)  # type: ignore[arg-type]
    return Probe(kind=kind, port=port, **timing)  # type: ignore[arg-type]


def _security(container: Mapping[str, Any]) -> bool:
    context = dict(container.get("securityContext") or {})
    privileged = bool(context.pop("privileged", False))
    if context:
        raise ManifestError(f"{container['name']}: securityContext {sorted(context)} not supported "
                            "(only privileged)")
    return privileged


def _limits(container: Mapping[str, Any]) -> tuple[int | None, float | None]:
    resources = container.get("resources") or {}
    unknown = set(resources) - {"requests", "limits"}
    if unknown:
        raise ManifestError(f"{container['name']}: resources {sorted(unknown)} not supported")
    limits = resources.get("limits") or {}
    extra = set(limits) - {"cpu", "memory"}
    if extra:
        raise ManifestError(f"{container['name']}: limits {sorted(extra)} not supported")
    memory = int(quantity(limits["memory"])) if "memory" in limits else None
    cpu = quantity(limits["cpu"]) if "cpu" in limits else None
    return memory, cpu


def _container(spec: Mapping[str, Any], node: Node, namespace: str,
               volumes: Mapping[str, Path], read_only: frozenset[str], sa_mount: Mount | None,
               sa_env: Sequence[tuple[str, str]]) -> ContainerPlan:
    name = str(spec["name"])
    unknown = set(spec) - MAPPED_CONTAINER_KEYS - set(IGNORED_CONTAINER_KEYS)
    if unknown:
        raise ManifestError(f"container {name}: {sorted(unknown)} not supported by the harness")
    env = _env(spec, node, namespace, sa_env)
    env_map = dict(env)
    mounts = []
    for m in spec.get("volumeMounts", []):
        if m.get("subPath") or m.get("subPathExpr"):
            raise ManifestError(f"{name}: volumeMount subPath is not supported")
        if m["name"] not in volumes:
            raise ManifestError(f"{name}: volumeMount of unknown volume {m['name']!r}")
        propagation = m.get("mountPropagation")
        if propagation not in PROPAGATION:
            raise ManifestError(f"{name}: mountPropagation {propagation!r} is not a "
                                "Kubernetes value")
        mounts.append(Mount(source=volumes[m["name"]], target=str(m["mountPath"]),
                            read_only=bool(m.get("readOnly", False)) or m["name"] in read_only,
                            propagation=PROPAGATION[propagation]))
    if sa_mount is not None:
        mounts.append(sa_mount)
    memory, cpu = _limits(spec)
    command = spec.get("command")
    args = spec.get("args")
    return ContainerPlan(
        name=name, image=str(spec["image"]),
        pull_policy=str(spec.get("imagePullPolicy") or _default_pull(str(spec["image"]))),
        entrypoint=None if command is None else tuple(expand(str(c), env_map) for c in command),
        args=None if args is None else tuple(expand(str(a), env_map) for a in args),
        env=env, privileged=_security(spec), mounts=tuple(mounts), memory_limit=memory,
        cpu_limit=cpu, working_dir=spec.get("workingDir"),
        liveness=_probe(spec.get("livenessProbe"), spec),
        readiness=_probe(spec.get("readinessProbe"), spec),
        startup=_probe(spec.get("startupProbe"), spec))


def _default_pull(image: str) -> str:
    latest = image.endswith(":latest") or ":" not in image.rsplit("/", 1)[-1]
    return "Always" if latest else "IfNotPresent"


def plan_pod(daemonset: Mapping[str, Any], node: Node) -> PodPlan:
    """The pod kubelet would run on ``node`` for this DaemonSet (ManifestError if unmappable)."""
    if (daemonset.get("apiVersion"), daemonset.get("kind")) != ("apps/v1", "DaemonSet"):
        raise ManifestError("not an apps/v1 DaemonSet")
    namespace = str(daemonset["metadata"].get("namespace", "default"))
    pod = daemonset["spec"]["template"]["spec"]
    unknown = set(pod) - MAPPED_POD_KEYS - set(IGNORED_POD_KEYS)
    if unknown:
        raise ManifestError(f"pod spec {sorted(unknown)} not supported by the harness")
    pod_dir = node.root / "var/lib/kubelet/pods" / node.pod_uid / "volumes"
    volumes: dict[str, Path] = {}
    host_dirs: list[HostPathDir] = []
    files: list[tuple[Path, str]] = []
    read_only: set[str] = set()  # kubelet mounts configMap volumes read-only, always
    for volume in pod.get("volumes", []):
        name = volume["name"]
        kinds = set(volume) - {"name"}
        if kinds == {"hostPath"}:
            kind = str(volume["hostPath"].get("type", ""))
            if kind not in HOST_PATH_TYPES:
                raise ManifestError(f"volume {name}: hostPath type {kind!r} unknown")
            source = host_source(node, str(volume["hostPath"]["path"]))
            volumes[name] = source
            host_dirs.append(HostPathDir(path=source, type=kind))
        elif kinds == {"configMap"}:
            ref = volume["configMap"]
            data = node.configmaps.get(ref["name"])
            if data is None:
                raise ManifestError(f"volume {name}: configMap {ref['name']!r} was not given "
                                    "(kubelet would wait for it)")
            directory = pod_dir / "kubernetes.io~configmap" / name
            items = ref.get("items") or [{"key": k, "path": k} for k in data]
            for item in items:
                if item["key"] not in data:
                    raise ManifestError(f"volume {name}: configMap has no key {item['key']!r}")
                files.append((directory / item["path"], data[item["key"]]))
            volumes[name] = directory
            read_only.add(name)
        elif kinds == {"emptyDir"}:
            volumes[name] = pod_dir / "kubernetes.io~empty-dir" / name
            host_dirs.append(HostPathDir(path=volumes[name], type="DirectoryOrCreate"))
        else:
            raise ManifestError(f"volume {name}: {sorted(kinds)} not supported "
                                "(hostPath, configMap, emptyDir)")
    sa_mount: Mount | None = None
    sa_env: tuple[tuple[str, str], ...] = ()
    sa = node.service_account
    if sa is not None and pod.get("automountServiceAccountToken", True):
        directory = pod_dir / "kubernetes.io~projected" / "kube-api-access"
        files += [(directory / "token", sa.token), (directory / "ca.crt", sa.ca_crt),
                  (directory / "namespace", namespace)]
        sa_mount = Mount(source=directory, target=SERVICE_ACCOUNT_DIR, read_only=True,
                         propagation="rprivate")
        sa_env = (("KUBERNETES_SERVICE_HOST", sa.api_host),
                  ("KUBERNETES_SERVICE_PORT", str(sa.api_port)))
    if pod.get("restartPolicy", "Always") != "Always":
        raise ManifestError("a DaemonSet pod's restartPolicy must be Always")

    def containers(key: str) -> tuple[ContainerPlan, ...]:
        return tuple(_container(c, node, namespace, volumes, frozenset(read_only), sa_mount,
                                sa_env)
                     for c in pod.get(key, []))

    return PodPlan(name=node.pod_name, namespace=namespace, node_name=node.name,
                   host_network=bool(pod.get("hostNetwork", False)),
                   host_pid=bool(pod.get("hostPID", False)),
                   init_containers=containers("initContainers"),
                   containers=containers("containers"),
                   host_dirs=tuple(host_dirs), files=tuple(files),
                   stop_timeout_s=int(pod.get("terminationGracePeriodSeconds", 30)))
