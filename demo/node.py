"""One emulated Kubernetes node on this machine, for running the real DaemonSet on it.

The node's file system is a temp dir (``root``): kubelet's dirs, ``/opt/cni/bin``,
``/var/lib/cni``, ``/run/...`` all live below it. Its hardware is an emulated SR-IOV host at
``<root>/run/sriov-emu`` (``sriovctl emulate``). Its kubelet is the kubelet simulator (device-plugin
registration, Allocate, pod-resources) plus :mod:`demo.daemonset_podman` (the pod lifecycle);
its API server is :mod:`demo.apiserver_sim`; its container runtime for ordinary pods is podman
with the CNI backend (:mod:`demo.podman`), which runs the ``sriov`` shim the DaemonSet's
initContainer installed into ``<root>/opt/cni/bin``.

One thing differs from a node whose ``/`` is the root: the runtime on this machine runs the shim
with paths of this machine, so a two-line launcher (:func:`shim_launcher`) points the installed
shim at ``<root>/run/sriov-k8s/cni-agent.sock``; on a real node the shim's default is that path.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from demo.daemonset_plan import Node, PodPlan, ServiceAccount, json_patch, plan_pod

REPO = Path(__file__).resolve().parents[1]
DAEMONSET = REPO / "configs" / "k8s" / "daemonset.yaml"
CONFIGMAP = REPO / "configs" / "k8s" / "configmap.yaml"
EMULATED_PATCH = REPO / "configs" / "emulated" / "daemonset-patch.yaml"
EMU_ROOT = "/run/sriov-emu"
"""Where configs/emulated/daemonset-patch.yaml expects the emulated host on the node."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class NodeLayout:
    workdir: Path
    """Holds ``root`` (the node's /) and the harness's own files next to it."""

    @property
    def root(self) -> Path:
        # short: the device plugin's sockets (~52 characters of name) live in
        # <root>/var/lib/kubelet/device-plugins/, and a unix socket path has 107 at most
        return self.workdir / "n"

    def path(self, node_path: str) -> Path:
        return self.root / node_path.lstrip("/")

    @property
    def emu(self) -> Path:
        return self.path(EMU_ROOT)

    @property
    def plugin_dir(self) -> Path:
        return self.path("/var/lib/kubelet/device-plugins")

    @property
    def pod_resources(self) -> Path:
        return self.path("/var/lib/kubelet/pod-resources/kubelet.sock")

    @property
    def cni_bin(self) -> Path:
        return self.path("/opt/cni/bin")

    @property
    def agent_socket(self) -> Path:
        return self.path("/run/sriov-k8s/cni-agent.sock")

    @property
    def cni_state(self) -> Path:
        return self.path("/var/lib/cni/sriov")

    @property
    def ipam(self) -> Path:
        return self.path("/var/lib/cni/networks")

    @property
    def launcher_dir(self) -> Path:
        return self.workdir / "runtime-cni"

    @property
    def podman(self) -> Path:
        return self.workdir / "pods"


def load_yaml_docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def configmaps(path: Path = CONFIGMAP) -> dict[str, dict[str, str]]:
    return {d["metadata"]["name"]: dict(d["data"]) for d in load_yaml_docs(path)
            if d.get("kind") == "ConfigMap"}


def daemonset(path: Path = DAEMONSET, patches: Sequence[Path] = (EMULATED_PATCH,),
              image: str | None = None) -> dict[str, Any]:
    """The DaemonSet as applied: the manifest, then each JSON patch (``kubectl patch
    --type=json``), then ``image`` for every container (``kubectl set image``), if given."""
    (doc,) = [d for d in load_yaml_docs(path) if d.get("kind") == "DaemonSet"]
    for patch in patches:
        doc = json_patch(doc, yaml.safe_load(patch.read_text()))
    if image is not None:
        pod = doc["spec"]["template"]["spec"]
        ops = [{"op": "replace", "path": f"/spec/template/spec/{key}/{i}/image", "value": image}
               for key in ("initContainers", "containers") for i in range(len(pod.get(key, [])))]
        doc = json_patch(doc, ops)
    return doc


def plan(layout: NodeLayout, ds: Mapping[str, Any], *, node_name: str,
         service_account: ServiceAccount | None,
         maps: Mapping[str, Mapping[str, str]] | None = None) -> PodPlan:
    """The pod kubelet creates for ``ds`` on this node (a fresh pod uid, like a new pod)."""
    uid = str(uuid.uuid4())
    node = Node(root=layout.root, name=node_name, pod_name=f"{ds['metadata']['name']}-{uid[:5]}",
                pod_uid=uid, configmaps=configmaps() if maps is None else maps,
                service_account=service_account)
    return plan_pod(ds, node)


def shim_launcher(target: Path, agent_socket: Path) -> str:
    """A sh launcher that runs the installed shim with this node's agent socket (pure)."""
    return ("#!/bin/sh\n# sriov-k8s DaemonSet harness: the node's installed shim, with the node's "
            "agent socket. Generated.\n"
            f"SRIOV_CNI_AGENT_SOCKET={shlex.quote(str(agent_socket))} "
            f"exec {shlex.quote(str(target))} \"$@\"\n")


def install_launcher(layout: NodeLayout) -> Path:
    layout.launcher_dir.mkdir(parents=True, exist_ok=True)
    launcher = layout.launcher_dir / "sriov"
    launcher.write_text(shim_launcher(layout.cni_bin / "sriov", layout.agent_socket))
    launcher.chmod(0o755)
    return launcher


def cni_result(stdout: str) -> dict[str, Any]:
    """The JSON a CNI plugin printed (result or error)."""
    out = json.loads(stdout)
    if not isinstance(out, dict):
        raise ValueError(f"CNI output is not an object: {stdout[:200]!r}")
    return out
