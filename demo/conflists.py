"""Network configuration lists for the demo and the podman tests. Pure: dicts in, dicts out.

The demo's template is ``configs/demo/sriov-net.conflist`` (what a NetworkAttachmentDefinition
would hold). Two ways to give the plugin its VF, both as real Kubernetes does:

- :func:`with_device_id`: Multus style, ``deviceID`` (and ``pciBusID``) written into the top
  level of every plugin of the list;
- :func:`with_pod_resources`: no deviceID; the plugin asks the kubelet pod-resources API for the
  VF allocated to ``K8S_POD_NAMESPACE``/``K8S_POD_NAME`` (from ``CNI_ARGS``).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

SRIOV_TYPE = "sriov"


def load(path: Path) -> dict[str, Any]:
    conflist = json.loads(path.read_text())
    if not isinstance(conflist, dict) or not isinstance(conflist.get("plugins"), list):
        raise ValueError(f"{path}: not a CNI network configuration list (no 'plugins' array)")
    return conflist


def _edit_sriov(conflist: Mapping[str, Any], **keys: Any) -> dict[str, Any]:
    out = copy.deepcopy(dict(conflist))
    for plugin in out["plugins"]:
        if plugin.get("type") == SRIOV_TYPE:
            plugin.update(keys)
    return out


def renamed(conflist: Mapping[str, Any], name: str) -> dict[str, Any]:
    return {**copy.deepcopy(dict(conflist)), "name": name}


def with_ipam_dir(conflist: Mapping[str, Any], data_dir: Path) -> dict[str, Any]:
    """Point every host-local IPAM at ``data_dir`` (leases stay in the demo's work dir)."""
    out = copy.deepcopy(dict(conflist))
    for plugin in out["plugins"]:
        ipam = plugin.get("ipam")
        if isinstance(ipam, dict) and ipam.get("type") == "host-local":
            ipam["dataDir"] = str(data_dir)
    return out


def with_device_id(conflist: Mapping[str, Any], device_id: str) -> dict[str, Any]:
    """Multus: the allocated VF as top-level ``deviceID`` and ``pciBusID`` of every plugin."""
    out = copy.deepcopy(dict(conflist))
    for plugin in out["plugins"]:
        plugin["deviceID"] = device_id
        plugin["pciBusID"] = device_id
    return out


def with_pod_resources(conflist: Mapping[str, Any], socket: Path) -> dict[str, Any]:
    return _edit_sriov(conflist, podResourcesSocket=str(socket))


def with_vlan(conflist: Mapping[str, Any], vlan: int | None) -> dict[str, Any]:
    out = _edit_sriov(conflist)
    for plugin in out["plugins"]:
        if plugin.get("type") == SRIOV_TYPE:
            if vlan is None:
                plugin.pop("vlan", None)
            else:
                plugin["vlan"] = vlan
    return out


def host_local(subnet: str, data_dir: Path, **extra: str) -> dict[str, Any]:
    return {"type": "host-local", "subnet": subnet, "dataDir": str(data_dir), **extra}


def sriov_vf(name: str, device_id: str, ipam: Mapping[str, Any], *,
             version: str = "1.0.0", **keys: Any) -> dict[str, Any]:
    """A one-plugin list in VF mode with the deviceID passed the Multus way."""
    plugin = {"type": SRIOV_TYPE, "ipam": dict(ipam), **keys}
    return with_device_id({"cniVersion": version, "name": name, "plugins": [plugin]}, device_id)


def sriov_fallback(name: str, master: str, ipam: Mapping[str, Any], *, mode: str = "bridge",
                   version: str = "1.0.0") -> dict[str, Any]:
    """A one-plugin list with no VF: our plugin's macvlan fallback on ``master``."""
    plugin = {"type": SRIOV_TYPE, "fallback": {"type": "macvlan", "master": master, "mode": mode},
              "ipam": dict(ipam)}
    return {"cniVersion": version, "name": name, "plugins": [plugin]}


def with_tuning(conflist: Mapping[str, Any], **tuning: Any) -> dict[str, Any]:
    """Chain the reference ``tuning`` plugin after ours (e.g. ``mtu=1400``, ``sysctl={...}``)."""
    out = copy.deepcopy(dict(conflist))
    out["plugins"].append({"type": "tuning", **tuning})
    return out
