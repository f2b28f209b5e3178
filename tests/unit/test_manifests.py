"""Every manifest under configs/ is checked against the Kubernetes client's own models.

Built-in kinds are deserialized into ``kubernetes.client`` models and serialized back;
any key the model does not know (a typo the API server would drop or reject) shows up
as a difference. On top of that: cross-references a user would trip over (mount names,
probe ports, selectors, RBAC subjects, ConfigMap keys, CLI flags). NADs are CRDs, so they
are checked by hand: apiVersion/kind/metadata, the resourceName annotation, and
``spec.config`` against our CNI netconf parser and the Debian reference plugins.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from sriov.nad import NAD_API_VERSION, NAD_KIND, RESOURCE_NAME_ANNOTATION
from tests.conftest import REPO

K8S_DIR = REPO / "configs" / "k8s"
NAD_DIR = REPO / "configs" / "nad"
REFERENCE_PLUGINS = Path("/usr/lib/cni")
MODELS = {
    ("apps/v1", "DaemonSet"): "V1DaemonSet",
    ("v1", "ConfigMap"): "V1ConfigMap",
    ("v1", "ServiceAccount"): "V1ServiceAccount",
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): "V1ClusterRole",
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): "V1ClusterRoleBinding",
}
HOST_PATH_TYPES = {"", "DirectoryOrCreate", "Directory", "FileOrCreate", "File", "Socket",
                   "CharDevice", "BlockDevice"}
TUNING_KEYS = {"cniVersion", "name", "type", "sysctl", "mac", "promisc", "mtu", "txQLen",
               "allmulti", "dataDir", "capabilities", "runtimeConfig", "args", "prevResult",
               "deviceID", "pciBusID"}
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


# ---------------------------------------------------------------- validators (shared)

def load_docs(path: Path) -> list[dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    assert docs, f"{path} holds no YAML document"
    return docs


def _dropped(original: Any, roundtrip: Any, path: str = "") -> Iterator[str]:
    """Paths present in ``original`` but lost or changed by the model round trip."""
    if isinstance(original, Mapping):
        if not isinstance(roundtrip, Mapping):
            yield path or "<root>"
            return
        for key, value in original.items():
            if key not in roundtrip:
                yield f"{path}.{key}"
            else:
                yield from _dropped(value, roundtrip[key], f"{path}.{key}")
    elif isinstance(original, list):
        if not isinstance(roundtrip, list) or len(roundtrip) != len(original):
            yield path
            return
        for i, (a, b) in enumerate(zip(original, roundtrip, strict=True)):
            yield from _dropped(a, b, f"{path}[{i}]")
    elif original != roundtrip:
        yield f"{path} ({original!r} became {roundtrip!r})"


def validate_k8s_object(doc: Mapping[str, Any]) -> Any:
    """Deserialize into the client model; fail on any key the model does not know."""
    from kubernetes import client

    key = (doc.get("apiVersion"), doc.get("kind"))
    assert key in MODELS, f"no model check for {key}; add it to MODELS"
    model = getattr(client, MODELS[key]).from_dict(doc)  # raises on wrong types/missing fields
    roundtrip = client.ApiClient().sanitize_for_serialization(model)
    dropped = list(_dropped(doc, roundtrip))
    assert dropped == [], (
        f"{key[1]} {doc['metadata'].get('name')}: keys the API does not know: {dropped}"
    )
    return model


def sriov_plugin_keys_ok(plugin: Mapping[str, Any]) -> None:
    netconf = pytest.importorskip(
        "cni.netconf", reason="cni/netconf.py (our netconf parser) not present"
    )
    unknown = set(plugin) - set(netconf.KNOWN_KEYS)
    assert unknown == set(), f"keys our sriov netconf does not know: {sorted(unknown)}"
    netconf.NetConf.parse(json.dumps(plugin).encode())  # raises CniError naming the bad key


def validate_nad(doc: Mapping[str, Any]) -> dict[str, Any]:
    """Check a NetworkAttachmentDefinition; returns its parsed ``spec.config``."""
    assert doc["apiVersion"] == NAD_API_VERSION
    assert doc["kind"] == NAD_KIND
    meta = doc["metadata"]
    assert DNS_SUBDOMAIN.match(meta["name"]) and len(meta["name"]) <= 253
    assert DNS_SUBDOMAIN.match(meta.get("namespace", "default"))
    annotations = meta.get("annotations") or {}
    assert set(annotations) <= {RESOURCE_NAME_ANNOTATION}, "unexpected annotations"
    if RESOURCE_NAME_ANNOTATION in annotations:
        assert re.match(r"^[a-z0-9.-]+/[A-Za-z0-9_-]+$", annotations[RESOURCE_NAME_ANNOTATION])
    assert set(doc["spec"]) == {"config"}
    config = json.loads(doc["spec"]["config"])
    assert config["cniVersion"] in ("0.3.1", "0.4.0", "1.0.0", "1.1.0")
    assert config["name"] == meta["name"], "Multus matches config name and NAD name"
    plugins = config.get("plugins", [config])
    assert plugins, "a conflist needs at least one plugin"
    for plugin in plugins:
        if plugin["type"] == "sriov":
            # libcni inserts cniVersion and name into each plugin of a list
            sriov_plugin_keys_ok(
                {"cniVersion": config["cniVersion"], "name": config["name"], **plugin}
            )
        elif plugin["type"] == "tuning":
            assert set(plugin) <= TUNING_KEYS
        else:
            pytest.fail(
                f"plugin type {plugin['type']!r} is neither ours nor a checked reference plugin"
            )
    return config


def pool_config_text() -> str:
    (configmap,) = load_docs(K8S_DIR / "configmap.yaml")
    return str(configmap["data"]["config.json"])


# ---------------------------------------------------------------- built-in kinds

@pytest.mark.parametrize("path", sorted(K8S_DIR.glob("*.yaml")), ids=lambda p: p.name)
def test_every_k8s_manifest_matches_the_client_models(path: Path) -> None:
    for doc in load_docs(path):
        validate_k8s_object(doc)


def _daemonset() -> dict[str, Any]:
    (doc,) = load_docs(K8S_DIR / "daemonset.yaml")
    return doc


def _main_container(pod: Mapping[str, Any]) -> dict[str, Any]:
    (container,) = [c for c in pod["containers"] if c["name"] == "sriov-device-plugin"]
    return container


def test_daemonset_selector_matches_template_labels() -> None:
    ds = _daemonset()
    match = ds["spec"]["selector"]["matchLabels"]
    labels = ds["spec"]["template"]["metadata"]["labels"]
    assert match and match.items() <= labels.items()
    assert ds["metadata"]["namespace"] == "kube-system"


def test_daemonset_volumes_and_mounts_agree() -> None:
    pod = _daemonset()["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert len(volumes) == len(pod["volumes"]), "duplicate volume names"
    used = set()
    for container in pod["containers"] + pod["initContainers"]:
        mount_paths = [m["mountPath"] for m in container.get("volumeMounts", [])]
        assert len(mount_paths) == len(set(mount_paths)), (
            f"{container['name']}: duplicate mountPath"
        )
        for mount in container.get("volumeMounts", []):
            assert mount["name"] in volumes, (
                f"{container['name']} mounts unknown volume {mount['name']}"
            )
            used.add(mount["name"])
    assert used == set(volumes), f"volumes nobody mounts: {sorted(set(volumes) - used)}"
    for volume in volumes.values():
        if "hostPath" in volume:
            assert volume["hostPath"]["path"].startswith("/")
            assert volume["hostPath"].get("type", "") in HOST_PATH_TYPES


def test_daemonset_mounts_everything_the_stack_needs() -> None:
    pod = _daemonset()["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True
    volumes = {v["name"]: v for v in pod["volumes"]}
    container = _main_container(pod)
    assert container["securityContext"]["privileged"] is True
    host_of = {}
    for mount in container["volumeMounts"]:
        volume = volumes[mount["name"]]
        source = (
            volume["hostPath"]["path"]
            if "hostPath" in volume
            else "configmap:" + volume["configMap"]["name"]
        )
        host_of[mount["mountPath"]] = (source, mount)
    required = ["/var/lib/kubelet/device-plugins", "/var/lib/kubelet/plugins_registry",
                "/var/lib/kubelet/pod-resources", "/var/run/netns", "/sys", "/dev",
                "/var/lib/cni/sriov", "/run/sriov-k8s", "/var/run/k8s.cni.cncf.io/devinfo/dp"]
    for path in required:
        assert path in host_of, f"{path} not mounted"
        assert host_of[path][0] == path, f"{path} mounted from {host_of[path][0]}"
    assert host_of["/var/lib/kubelet/pod-resources"][1].get("readOnly") is True
    assert host_of["/var/run/netns"][1].get("mountPropagation") == "HostToContainer"
    assert host_of["/etc/pcidp"][0] == "configmap:sriovdp-config"


def test_daemonset_config_volume_names_the_configmap_key() -> None:
    (configmap,) = load_docs(K8S_DIR / "configmap.yaml")
    pod = _daemonset()["spec"]["template"]["spec"]
    (config,) = [v for v in pod["volumes"] if "configMap" in v]
    assert config["configMap"]["name"] == configmap["metadata"]["name"] == "sriovdp-config"
    assert [i["key"] for i in config["configMap"]["items"]] == list(configmap["data"])
    assert configmap["metadata"]["namespace"] == _daemonset()["metadata"]["namespace"]
    args = _main_container(pod)["args"]
    assert "--config=/etc/pcidp/config.json" in args


def test_init_container_installs_the_shim_into_host_cni_bin() -> None:
    pod = _daemonset()["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    (install,) = [c for c in pod["initContainers"] if c["name"] == "install-cni"]
    (mount,) = install["volumeMounts"]
    assert volumes[mount["name"]]["hostPath"]["path"] == "/opt/cni/bin"
    assert install["command"][-1] == mount["mountPath"], (
        "the shim goes where /opt/cni/bin is mounted"
    )
    assert install["command"][0].endswith("hack/install-cni")
    # the node has no image venv: the shim must be the self-contained stdlib-only copy
    assert "--self-contained" in install["command"]


def test_probes_use_a_declared_container_port() -> None:
    container = _main_container(_daemonset()["spec"]["template"]["spec"])
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for probe in ("livenessProbe", "readinessProbe"):
        port = container[probe]["httpGet"]["port"]
        assert port in ports or port in ports.values(), f"{probe} port {port!r} not declared"
    metrics_port = ports[container["livenessProbe"]["httpGet"]["port"]]
    assert f"--metrics-port={metrics_port}" in container["args"]


def _quantity(value: str | int) -> float:
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    text = str(value)
    for suffix, factor in units.items():
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * factor
    return float(text)


def test_every_container_has_requests_within_limits() -> None:
    pod = _daemonset()["spec"]["template"]["spec"]
    for container in pod["containers"] + pod["initContainers"]:
        resources = container["resources"]
        for name in ("cpu", "memory"):
            assert _quantity(resources["requests"][name]) <= _quantity(resources["limits"][name]), (
                f"{container['name']} {name}")


def test_container_commands_parse_with_our_clis() -> None:
    from sriov.cli.main import build_parser

    pod = _daemonset()["spec"]["template"]["spec"]
    (labels,) = [c for c in pod["initContainers"] if c["name"] == "node-labels"]
    assert labels["command"][0] == "sriovctl"
    args = build_parser().parse_args(labels["command"][1:])
    assert args.command == "labels" and args.node == "$(NODE_NAME)"
    assert {e["name"] for e in labels["env"]} >= {"NODE_NAME"}
    if not (REPO / "deviceplugin" / "cli.py").exists():
        pytest.skip("deviceplugin/cli.py not present yet: device-plugin args not checked")
    from deviceplugin.cli import parse_args as dp_parse_args  # the CLI's real (Go-style) path

    container = _main_container(pod)
    dp_args = dp_parse_args(container["args"])
    mounted = {Path(m["mountPath"]) for m in container["volumeMounts"]}
    for path in (dp_args.config.parent, dp_args.cni_agent_socket.parent, dp_args.plugin_dir,
                 dp_args.devinfo_dir):
        assert path in mounted, f"the device plugin uses {path}, which is not mounted"


def test_rbac_lets_the_service_account_get_and_patch_nodes() -> None:
    docs = {d["kind"]: d for d in load_docs(K8S_DIR / "rbac.yaml")}
    account, role, binding = docs["ServiceAccount"], docs["ClusterRole"], docs["ClusterRoleBinding"]
    pod = _daemonset()["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == account["metadata"]["name"]
    assert account["metadata"]["namespace"] == _daemonset()["metadata"]["namespace"]
    (rule,) = role["rules"]
    assert rule["apiGroups"] == [""] and rule["resources"] == ["nodes"]
    assert set(rule["verbs"]) == {"get", "patch"}, "least privilege: only what sriovctl labels does"
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                  "name": role["metadata"]["name"]}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account["metadata"]["name"],
                                    "namespace": account["metadata"]["namespace"]}]


def test_configmap_pools_parse_with_our_pool_parser() -> None:
    from sriov.cli.nad import pool_is_dpdk
    from sriov.pools import parse_pool_config

    config = parse_pool_config(pool_config_text())
    assert config.warnings == ()
    kinds = {pool.full_name: pool_is_dpdk(pool) for pool in config.pools}
    assert kinds["intel.com/sriov_netdevice"] is False
    assert kinds["intel.com/sriov_dpdk"] is True


# ---------------------------------------------------------------- NADs

NAD_FILES = sorted(NAD_DIR.glob("*.yaml"))


def test_the_documented_nads_exist() -> None:
    assert {p.name for p in NAD_FILES} >= {"sriov-vf.yaml", "sriov-dpdk.yaml", "macvlan-dhcp.yaml",
                                           "sriov-vf-tuning.yaml"}


@pytest.mark.parametrize("path", NAD_FILES, ids=lambda p: p.name)
def test_nad_is_valid_and_its_pool_exists(path: Path) -> None:
    from sriov.pools import parse_pool_config

    pools = {p.full_name for p in parse_pool_config(pool_config_text()).pools}
    (doc,) = load_docs(path)
    validate_nad(doc)
    resource = doc["metadata"].get("annotations", {}).get(RESOURCE_NAME_ANNOTATION)
    if resource is not None:
        assert resource in pools, f"{resource} is not a pool in configs/k8s/configmap.yaml"


def _nad_config(name: str) -> dict[str, Any]:
    (doc,) = load_docs(NAD_DIR / name)
    return validate_nad(doc) | {"_annotations": doc["metadata"].get("annotations", {})}


def test_sriov_vf_nad_sets_vlan_spoofchk_and_host_local() -> None:
    config = _nad_config("sriov-vf.yaml")
    assert (config["type"], config["vlan"], config["spoofchk"]) == ("sriov", 100, "on")
    assert config["ipam"]["type"] == "host-local"
    assert config["_annotations"][RESOURCE_NAME_ANNOTATION] == "intel.com/sriov_netdevice"


def test_sriov_dpdk_nad_uses_the_dpdk_pool_without_dynamic_ipam() -> None:
    from sriov.cli.nad import pool_is_dpdk
    from sriov.pools import parse_pool_config

    config = _nad_config("sriov-dpdk.yaml")
    pool = parse_pool_config(pool_config_text()).pool(
        config["_annotations"][RESOURCE_NAME_ANNOTATION]
    )
    assert pool is not None and pool_is_dpdk(pool)
    assert config.get("ipam", {"type": "static"})["type"] == "static"


def test_macvlan_dhcp_nad_falls_back_to_macvlan_without_a_resource() -> None:
    config = _nad_config("macvlan-dhcp.yaml")
    assert config["_annotations"] == {}
    assert config["fallback"]["type"] == "macvlan" and config["fallback"]["master"]
    assert config["ipam"] == {"type": "dhcp"}


def test_tuning_nad_chains_the_reference_tuning_plugin_after_ours() -> None:
    config = _nad_config("sriov-vf-tuning.yaml")
    assert [p["type"] for p in config["plugins"]] == ["sriov", "tuning"]


def _reference_plugin_versions(plugin: str) -> list[str]:
    binary = REFERENCE_PLUGINS / plugin
    if not os.access(binary, os.X_OK):
        pytest.skip(f"{binary} not installed (apt install containernetworking-plugins)")
    out = subprocess.run([str(binary)], env={"CNI_COMMAND": "VERSION"}, input=b"{}",
                         capture_output=True, check=True, timeout=10)
    return list(json.loads(out.stdout)["supportedVersions"])


@pytest.mark.parametrize("path", NAD_FILES, ids=lambda p: p.name)
def test_reference_plugins_in_nads_support_their_cni_version(path: Path) -> None:
    """Ask the real Debian plugins (tuning, IPAM) whether they speak the NAD's cniVersion."""
    (doc,) = load_docs(path)
    config = json.loads(doc["spec"]["config"])
    plugins = config.get("plugins", [config])
    delegates = [p["type"] for p in plugins if p["type"] != "sriov"]
    delegates += [p["ipam"]["type"] for p in plugins if "ipam" in p]
    for plugin in delegates:
        assert config["cniVersion"] in _reference_plugin_versions(plugin), plugin
