"""Pure computation of the Kubernetes Node labels and annotations that describe SR-IOV hardware.

Input is an :class:`sriov.types.Inventory`; output is a :class:`NodeMetadata` whose keys and
values are checked against Kubernetes label syntax, and a merge patch that also removes our
stale labels. Nothing here talks to the API server (``sriov.cli.labels`` does).
"""

from __future__ import annotations

import collections
import dataclasses
import json
import re
from collections.abc import Mapping

from sriov.errors import InvalidInputError
from sriov.types import Inventory

LABEL_PREFIX = "sriov-k8s.io"
SRIOV_CAPABLE = f"{LABEL_PREFIX}/sriov-capable"
PF_COUNT = f"{LABEL_PREFIX}/pf-count"
VF_COUNT = f"{LABEL_PREFIX}/vf-count"
VF_CAPACITY = f"{LABEL_PREFIX}/vf-capacity"
RDMA_CAPABLE = f"{LABEL_PREFIX}/rdma-capable"
NIC_MODEL_PREFIX = f"{LABEL_PREFIX}/nic-"
INVENTORY_ANNOTATION = f"{LABEL_PREFIX}/inventory"
MAX_ANNOTATIONS_BYTES = 256 * 1024
"""The API server rejects a Node whose annotations total more than 256 KiB."""

_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class NodeMetadata:
    labels: Mapping[str, str]
    annotations: Mapping[str, str]


def check_label_key(key: str) -> str:
    """Validate ``[prefix/]name`` the way the API server does; returns ``key``."""
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.fullmatch(prefix)):
        raise InvalidInputError(
            "label key", key, "prefix must be a DNS subdomain of at most 253 chars"
        )
    if not name or len(name) > 63 or not _NAME.fullmatch(name):
        raise InvalidInputError(
            "label key", key,
            "name must be 1-63 chars of [A-Za-z0-9-_.], starting and ending alphanumeric")
    return key


def check_label_value(key: str, value: str) -> str:
    """Validate a label value (empty, or up to 63 chars like a label name); returns ``value``."""
    if value and (len(value) > 63 or not _NAME.fullmatch(value)):
        raise InvalidInputError(
            f"value of label {key}", value,
            "must be empty or 1-63 chars of [A-Za-z0-9-_.], starting and ending alphanumeric")
    return value


def inventory_summary(inventory: Inventory) -> dict[str, object]:
    """A compact JSON-able view: per PF its model, driver, VF counts and VF drivers."""
    pfs = []
    for pf in sorted(inventory.pfs, key=lambda p: p.address):
        vfs = inventory.vfs_of(pf.address)
        drivers = collections.Counter(v.driver or "none" for v in vfs)
        entry: dict[str, object] = {
            "pci": pf.address,
            "model": f"{pf.vendor_id}:{pf.device_id}",
            "driver": pf.driver,
            "netdev": pf.netdev,
            "totalVfs": pf.total_vfs,
            "numVfs": pf.num_vfs,
            "vfDrivers": dict(sorted(drivers.items())),
        }
        if pf.numa_node is not None:
            entry["numa"] = pf.numa_node
        if any(v.is_rdma for v in vfs):
            entry["rdma"] = True
        pfs.append(entry)
    return {"pfs": pfs, "vfCount": len(inventory.vfs)}


def compute_node_metadata(inventory: Inventory) -> NodeMetadata:
    """Labels + the inventory annotation for one node; raises on any invalid key or value."""
    sriov_pfs = [pf for pf in inventory.pfs if pf.total_vfs > 0]
    labels: dict[str, str] = {
        SRIOV_CAPABLE: "true" if sriov_pfs else "false",
        PF_COUNT: str(len(sriov_pfs)),
        VF_COUNT: str(len(inventory.vfs)),
        VF_CAPACITY: str(sum(pf.total_vfs for pf in sriov_pfs)),
    }
    if any(v.is_rdma for v in inventory.vfs):
        labels[RDMA_CAPABLE] = "true"
    models = collections.Counter(f"{pf.vendor_id}-{pf.device_id}".lower() for pf in sriov_pfs)
    for model, count in sorted(models.items()):
        labels[f"{NIC_MODEL_PREFIX}{model}"] = str(count)
    for key, value in labels.items():
        check_label_key(key)
        check_label_value(key, value)
    summary = json.dumps(inventory_summary(inventory), separators=(",", ":"), sort_keys=True)
    annotations = {INVENTORY_ANNOTATION: summary}
    size = sum(len(k) + len(v) for k, v in annotations.items())
    if size > MAX_ANNOTATIONS_BYTES:
        raise InvalidInputError(
            "annotation", INVENTORY_ANNOTATION,
            f"{size} bytes exceeds the API server's 256 KiB limit on a Node's annotations")
    return NodeMetadata(labels=labels, annotations=annotations)


def _ours(key: str) -> bool:
    return key.startswith(LABEL_PREFIX + "/")


def node_patch(
    metadata: NodeMetadata,
    current_labels: Mapping[str, str] | None = None,
    current_annotations: Mapping[str, str] | None = None,
) -> dict[str, object]:
    """A JSON merge patch setting our labels/annotations and deleting our stale ones (``null``).

    Keys outside the ``sriov-k8s.io/`` prefix are never touched.
    """
    labels: dict[str, str | None] = dict(metadata.labels)
    for key in current_labels or {}:
        if _ours(key) and key not in metadata.labels:
            labels[key] = None
    annotations: dict[str, str | None] = dict(metadata.annotations)
    for key in current_annotations or {}:
        if _ours(key) and key not in metadata.annotations:
            annotations[key] = None
    return {"metadata": {"labels": dict(sorted(labels.items())),
                         "annotations": dict(sorted(annotations.items()))}}
