"""Node labels from the inventory: pure computation, ``--dry-run``, and publishing for real.

The publish path runs the real kubernetes client end to end against a small HTTP API
server on localhost (GET/PATCH ``/api/v1/nodes/<name>``, JSON merge patch applied as the
API server does), with a generated kubeconfig carrying a bearer token the server checks.
"""

from __future__ import annotations

import argparse
import io
import json
import threading
from collections.abc import Iterator
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from sriov.cli.labels import NodePublishError, publish
from sriov.cli.main import main
from sriov.emulate.profiles import INTEL_X710, MELLANOX_CX5
from sriov.emulate.tree import PfSpec, SysfsTreeBuilder
from sriov.errors import InvalidInputError
from sriov.node_labels import (
    INVENTORY_ANNOTATION,
    check_label_key,
    check_label_value,
    compute_node_metadata,
    node_patch,
)
from sriov.sysfs import SysfsReader
from sriov.types import Inventory, LinkType, PciAddress, PhysicalFunction

TOKEN = "st-token-123"


@pytest.fixture
def sysfs_root(tmp_path: Path) -> Path:
    """Two X710 PFs (4 VFs, one on vfio-pci; 0 VFs) and a ConnectX-5 with 2 RDMA VFs."""
    root = tmp_path / "root"
    tree = SysfsTreeBuilder(root)
    tree.add_pf(PfSpec(address="0000:3b:00.0", ifname="ens1f0", profile=INTEL_X710, num_vfs=4,
                       vf_ifnames=("ens1f0v0", "ens1f0v1", "ens1f0v2", None),
                       vf_drivers={3: "vfio-pci"}, numa_node=0))
    tree.add_pf(PfSpec(address="0000:3b:00.1", ifname="ens1f1", profile=INTEL_X710, num_vfs=0))
    tree.add_pf(PfSpec(address="0000:5e:00.0", ifname="ens2f0", profile=MELLANOX_CX5, num_vfs=2,
                       vf_ifnames=("ens2f0v0", "ens2f0v1")))
    return root


def test_labels_describe_the_hardware(sysfs_root: Path) -> None:
    metadata = compute_node_metadata(SysfsReader(sysfs_root).inventory())
    assert metadata.labels == {
        "sriov-k8s.io/sriov-capable": "true",
        "sriov-k8s.io/pf-count": "3",
        "sriov-k8s.io/vf-count": "6",
        "sriov-k8s.io/vf-capacity": str(2 * INTEL_X710.max_vfs + MELLANOX_CX5.max_vfs),
        "sriov-k8s.io/rdma-capable": "true",
        "sriov-k8s.io/nic-8086-1572": "2",
        "sriov-k8s.io/nic-15b3-1017": "1",
    }
    for key, value in metadata.labels.items():
        assert check_label_key(key) == key and check_label_value(key, value) == value


def test_inventory_annotation_is_compact_json_of_pfs_and_vfs(sysfs_root: Path) -> None:
    metadata = compute_node_metadata(SysfsReader(sysfs_root).inventory())
    text = metadata.annotations[INVENTORY_ANNOTATION]
    assert " " not in text and "\n" not in text
    summary = json.loads(text)
    assert summary["vfCount"] == 6
    by_pci = {pf["pci"]: pf for pf in summary["pfs"]}
    assert by_pci["0000:3b:00.0"]["vfDrivers"] == {"iavf": 3, "vfio-pci": 1}
    assert by_pci["0000:3b:00.0"]["numa"] == 0 and by_pci["0000:3b:00.0"]["netdev"] == "ens1f0"
    assert by_pci["0000:3b:00.1"]["numVfs"] == 0
    assert by_pci["0000:5e:00.0"]["rdma"] is True and by_pci["0000:5e:00.0"]["model"] == "15b3:1017"


def test_a_node_without_sriov_says_so() -> None:
    metadata = compute_node_metadata(Inventory(pfs=(), vfs=()))
    assert metadata.labels == {"sriov-k8s.io/sriov-capable": "false", "sriov-k8s.io/pf-count": "0",
                               "sriov-k8s.io/vf-count": "0", "sriov-k8s.io/vf-capacity": "0"}
    assert json.loads(metadata.annotations[INVENTORY_ANNOTATION]) == {"pfs": [], "vfCount": 0}


def _pf(n: int) -> PhysicalFunction:
    return PhysicalFunction(
        address=PciAddress(f"{n // 65536:04x}:{n // 256 % 256:02x}:00.{n % 8}"), vendor_id="8086",
        device_id="1572", driver="i40e", netdevs=(), total_vfs=64, num_vfs=0, numa_node=None,
        link_type=LinkType.ETHER, mtu=1500, vf_addresses=())


def test_an_annotation_over_the_api_limit_is_refused() -> None:
    inventory = Inventory(pfs=tuple(_pf(n) for n in range(2500)), vfs=())
    with pytest.raises(InvalidInputError, match="256"):
        compute_node_metadata(inventory)


@pytest.mark.parametrize("key", ["sriov-k8s.io/" + "a" * 64, "sriov-k8s.io/-x", "Bad_Prefix/x",
                                 "sriov-k8s.io/", "x y"])
def test_invalid_label_keys_are_rejected(key: str) -> None:
    with pytest.raises(InvalidInputError, match="label key"):
        check_label_key(key)


@pytest.mark.parametrize("value", ["a" * 64, "-x", "x_", "a/b"])
def test_invalid_label_values_are_rejected(value: str) -> None:
    with pytest.raises(InvalidInputError, match="value of label k"):
        check_label_value("k", value)


def test_patch_deletes_only_our_stale_labels(sysfs_root: Path) -> None:
    metadata = compute_node_metadata(SysfsReader(sysfs_root).inventory())
    patch = node_patch(metadata, {"sriov-k8s.io/nic-8086-10c9": "1", "kubernetes.io/os": "linux"},
                       {"sriov-k8s.io/old": "x", "other.io/keep": "y"})
    labels, annotations = patch["metadata"]["labels"], patch["metadata"]["annotations"]  # type: ignore[index]
    assert labels["sriov-k8s.io/nic-8086-10c9"] is None and "kubernetes.io/os" not in labels
    assert annotations["sriov-k8s.io/old"] is None and "other.io/keep" not in annotations


# ---------------------------------------------------------------- CLI --dry-run

def test_dry_run_prints_the_patch(sysfs_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["labels", "--sysfs-root", str(sysfs_root), "--dry-run", "--node", "st-node"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["metadata"]["labels"]["sriov-k8s.io/vf-count"] == "6"
    assert INVENTORY_ANNOTATION in out["metadata"]["annotations"]


# ---------------------------------------------------------------- publish for real

def _merge(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """RFC 7386 JSON merge patch, as the API server applies application/merge-patch+json."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = value
    return target


class FakeApiServer(ThreadingHTTPServer):
    def __init__(self, node: dict[str, Any]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.node = node
        self.requests: list[tuple[str, str, str, dict[str, Any] | None]] = []


class _Handler(BaseHTTPRequestHandler):
    server: FakeApiServer

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _reply(self, status: HTTPStatus, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _route(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        self.server.requests.append((method, self.path, self.headers.get("Content-Type", ""), body))
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self._reply(HTTPStatus.UNAUTHORIZED, {"kind": "Status", "code": 401})
            return
        name = self.server.node["metadata"]["name"]
        if self.path.split("?")[0] != f"/api/v1/nodes/{name}":
            self._reply(HTTPStatus.NOT_FOUND, {"kind": "Status", "code": 404, "reason": "NotFound"})
            return
        if method == "PATCH":
            if self.headers.get("Content-Type") != "application/merge-patch+json":
                self._reply(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, {"kind": "Status", "code": 415})
                return
            _merge(self.server.node, body or {})
        self._reply(HTTPStatus.OK, self.server.node)

    def do_GET(self) -> None:
        self._route("GET")

    def do_PATCH(self) -> None:
        self._route("PATCH")


@pytest.fixture
def api_server() -> Iterator[FakeApiServer]:
    node = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": "st-node",
            "labels": {"kubernetes.io/hostname": "st-node", "sriov-k8s.io/nic-8086-10c9": "2"},
            "annotations": {"node.alpha.kubernetes.io/ttl": "0"},
        },
    }
    server = FakeApiServer(node)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _kubeconfig(tmp_path: Path, server: str) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "st",
        "clusters": [{"name": "st", "cluster": {"server": server}}],
        "users": [{"name": "st", "user": {"token": TOKEN}}],
        "contexts": [{"name": "st", "context": {"cluster": "st", "user": "st"}}],
    }))
    return path


def test_labels_cli_patches_the_node(sysfs_root: Path, tmp_path: Path, api_server: FakeApiServer,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    kubeconfig = _kubeconfig(tmp_path, f"http://127.0.0.1:{api_server.server_port}")
    rc = main(["labels", "--sysfs-root", str(sysfs_root), "--node", "st-node",
               "--kubeconfig", str(kubeconfig)])
    assert rc == 0, capsys.readouterr().err
    assert "node/st-node labelled" in capsys.readouterr().out
    assert [(m, p.split("?")[0], c) for m, p, c, _ in api_server.requests] == [
        ("GET", "/api/v1/nodes/st-node", ""),
        ("PATCH", "/api/v1/nodes/st-node", "application/merge-patch+json")]
    labels = api_server.node["metadata"]["labels"]
    assert labels["sriov-k8s.io/vf-count"] == "6" and labels["sriov-k8s.io/sriov-capable"] == "true"
    assert "sriov-k8s.io/nic-8086-10c9" not in labels, "stale model label removed"
    assert labels["kubernetes.io/hostname"] == "st-node", "foreign labels untouched"
    annotations = api_server.node["metadata"]["annotations"]
    assert json.loads(annotations[INVENTORY_ANNOTATION])["vfCount"] == 6
    assert annotations["node.alpha.kubernetes.io/ttl"] == "0"


def test_unknown_node_is_a_clear_error(
    sysfs_root: Path, tmp_path: Path, api_server: FakeApiServer
) -> None:
    metadata = compute_node_metadata(SysfsReader(sysfs_root).inventory())
    kubeconfig = _kubeconfig(tmp_path, f"http://127.0.0.1:{api_server.server_port}")
    with pytest.raises(NodePublishError, match=r"'st-other'.*404.*--node"):
        publish(metadata, node="st-other", kubeconfig=kubeconfig)


def test_unreachable_api_server_is_a_clear_error(sysfs_root: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    port = server.server_port
    server.server_close()  # nothing listens on this port any more
    kubeconfig = _kubeconfig(tmp_path, f"http://127.0.0.1:{port}")
    rc = main(["labels", "--sysfs-root", str(sysfs_root), "--node", "st-node",
               "--kubeconfig", str(kubeconfig)])
    err = capsys.readouterr().err
    assert rc == 1 and "cannot reach the API server" in err and "Traceback" not in err


def test_missing_kubeconfig_is_a_clear_error(sysfs_root: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["labels", "--sysfs-root", str(sysfs_root), "--node", "st-node",
               "--kubeconfig", str(tmp_path / "absent")])
    err = capsys.readouterr().err
    assert rc == 1 and "cannot load Kubernetes credentials" in err and "absent" in err


def test_run_writes_to_the_given_stream(sysfs_root: Path) -> None:
    from sriov.cli.labels import run

    out = io.StringIO()
    args = argparse.Namespace(sysfs_root=sysfs_root, node="st-node", kubeconfig=None, dry_run=True)
    assert run(args, stdout=out) == 0
    assert json.loads(out.getvalue())["metadata"]["labels"]["sriov-k8s.io/pf-count"] == "3"
