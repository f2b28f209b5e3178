"""``sriovctl labels``: publish SR-IOV node labels and the inventory annotation on this Node.

The labels are computed by :mod:`sriov.node_labels` from the sysfs inventory. With
``--dry-run`` the merge patch is printed; otherwise the Node is read (to find our stale
labels) and patched through the Kubernetes API. The ``kubernetes`` client is imported
only inside :func:`publish`, so the ``sriov`` package never loads it at import time.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

from sriov.errors import SriovError
from sriov.node_labels import NodeMetadata, compute_node_metadata, node_patch
from sriov.sysfs import SysfsReader

log = logging.getLogger(__name__)

MERGE_PATCH = "application/merge-patch+json"
DEFAULT_SYSFS_ROOT = Path("/")
REQUEST_TIMEOUT_S = 10.0


class NodePublishError(SriovError):
    """The Node could not be read or patched through the Kubernetes API."""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "labels", help="label this Kubernetes Node with its SR-IOV inventory",
        description="Compute sriov-k8s.io/* node labels and the inventory annotation from "
                    "sysfs and patch them onto the Node (or print the patch with --dry-run).")
    p.add_argument("--sysfs-root", type=Path, default=DEFAULT_SYSFS_ROOT,
                   help="root holding sys/bus/pci and sys/class/net (default: /)")
    p.add_argument("--node", default=None,
                   help="Node name (default: this machine's hostname)")
    p.add_argument(
        "--kubeconfig",
        type=Path,
        default=None,
        help="kubeconfig file (default: in-cluster service account, else ~/.kube/config)",
    )
    p.add_argument("--dry-run", action="store_true", help="print the merge patch, change nothing")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, stdout: TextIO | None = None) -> int:
    inventory = SysfsReader(args.sysfs_root).inventory()
    for skipped in inventory.skipped:
        log.warning("skipped device path=%s reason=%s", skipped.path, skipped.reason)
    metadata = compute_node_metadata(inventory)
    out = stdout if stdout is not None else sys.stdout
    node = args.node or socket.gethostname()
    if args.dry_run:
        out.write(json.dumps(node_patch(metadata), indent=2, sort_keys=True) + "\n")
        return 0
    publish(metadata, node=node, kubeconfig=args.kubeconfig)
    out.write(f"node/{node} labelled: {len(metadata.labels)} sriov-k8s.io labels\n")
    return 0


def publish(
    metadata: NodeMetadata, *, node: str, kubeconfig: Path | None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, object]:
    """Read ``node``, then merge-patch our labels/annotations onto it; returns the patch sent."""
    from kubernetes import client, config
    from kubernetes.client.exceptions import ApiException
    from kubernetes.config.config_exception import ConfigException
    from urllib3.exceptions import HTTPError

    env = os.environ if environ is None else environ
    try:
        if kubeconfig is not None:
            api_client = config.new_client_from_config(config_file=str(kubeconfig))
        elif env.get("KUBERNETES_SERVICE_HOST"):
            configuration = client.Configuration()
            config.load_incluster_config(client_configuration=configuration)
            api_client = client.ApiClient(configuration)
        else:
            api_client = config.new_client_from_config()
    except (ConfigException, OSError) as e:
        where = kubeconfig or "the in-cluster service account / ~/.kube/config"
        raise NodePublishError(f"cannot load Kubernetes credentials from {where}: {e}") from e
    with api_client:
        core = client.CoreV1Api(api_client)
        try:
            current = core.read_node(node, _request_timeout=REQUEST_TIMEOUT_S)
            labels = dict(current.metadata.labels or {}) if current.metadata else {}
            annotations = dict(current.metadata.annotations or {}) if current.metadata else {}
            patch = node_patch(metadata, labels, annotations)
            core.patch_node(node, patch, _content_type=MERGE_PATCH,
                            _request_timeout=REQUEST_TIMEOUT_S)
        except ApiException as e:
            hint = " (use --node NAME)" if e.status == 404 else ""
            raise NodePublishError(
                f"node {node!r}: API server answered {e.status} {e.reason}{hint}") from e
        except HTTPError as e:
            raise NodePublishError(f"node {node!r}: cannot reach the API server: {e}") from e
    log.info("patched node=%s labels=%s", node, len(metadata.labels))
    return patch

