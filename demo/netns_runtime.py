"""The no-podman fallback: "pods" are named netns, attached by running the CNI list ourselves.

Same surface as :class:`demo.podman.Podman` (``prepare``, ``add_network``, ``run``, ``exec``,
``kill_netns``, ``remove``, ``close``) so the demo drives either one. CNI_ARGS carry
``K8S_POD_NAMESPACE`` and ``K8S_POD_NAME`` (both = the pod name), as Multus/CRI runtimes do.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from demo.cni_exec import Attachment, CniExecError, CniRunner
from demo.podman import BUSYBOX

log = logging.getLogger(__name__)
NETNS_DIR = Path("/run/netns")
IFNAME = "eth0"


@dataclasses.dataclass(slots=True, kw_only=True)
class _Pod:
    netns: str
    conflist: dict[str, Any]
    """The list as it was at ADD (DEL must see the same config)."""
    attachment: Attachment
    result: dict[str, Any]


def pod_cni_args(name: str) -> str:
    return f"IgnoreUnknown=1;K8S_POD_NAMESPACE={name};K8S_POD_NAME={name}"


class NetnsRuntime:
    name = "ip netns + CNI exec"
    passes_pod_namespace = True

    def __init__(self, plugin_dirs: Sequence[Path], env: Mapping[str, str]) -> None:
        self.cni = CniRunner(plugin_dirs, env)
        self.networks: dict[str, dict[str, Any]] = {}
        self.pods: dict[str, _Pod] = {}

    def prepare(self) -> None:
        return None

    def add_network(self, conflist: Mapping[str, Any]) -> str:
        self.networks[str(conflist["name"])] = dict(conflist)
        return str(conflist["name"])

    def run(self, name: str, network: str) -> str:
        netns = name  # the pod's netns is named after the pod (recognisable leftovers)
        subprocess.run(["ip", "netns", "add", netns], check=True, capture_output=True)
        subprocess.run(["ip", "-n", netns, "link", "set", "lo", "up"], check=True)
        container_id = secrets.token_hex(16)
        att = Attachment(container_id=container_id, netns=str(NETNS_DIR / netns), ifname=IFNAME,
                         cni_args=pod_cni_args(name))
        try:
            result = self.cni.add(self.networks[network], att)
        except BaseException:
            subprocess.run(["ip", "netns", "del", netns], check=False, capture_output=True)
            raise
        self.pods[name] = _Pod(netns=netns, conflist=self.networks[network], attachment=att,
                               result=result)
        return container_id

    def exec(self, name: str, *argv: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` in the pod's netns with busybox applets, like in the podman image."""
        tool = [str(BUSYBOX)] if BUSYBOX.is_file() else []
        return subprocess.run(["ip", "netns", "exec", self.pods[name].netns, *tool, *argv],
                              capture_output=True, text=True, check=check, timeout=60)

    def netns_path(self, name: str) -> str:
        return self.pods[name].attachment.netns

    def kill_netns(self, name: str) -> None:
        """Destroy the pod's netns behind the CNI's back (no DEL), as a crashed runtime would."""
        subprocess.run(["ip", "netns", "del", self.pods[name].netns], check=False,
                       capture_output=True)

    def remove(self, name: str) -> None:
        """DEL the pod's attachment (also when its netns is gone), then drop the netns."""
        pod = self.pods.pop(name, None)
        if pod is None:
            return
        errors = self.cni.delete(pod.conflist, pod.attachment, pod.result)
        subprocess.run(["ip", "netns", "del", pod.netns], check=False, capture_output=True)
        if errors:
            raise CniExecError("; ".join(errors))

    def close(self) -> None:
        for name in list(self.pods):
            try:
                self.remove(name)
            except CniExecError as e:
                log.warning("teardown of %s: %s", name, e)
