"""Pure generation of Multus NetworkAttachmentDefinitions for our ``sriov`` CNI plugin.

Builds the NAD object (``spec.config`` is a JSON CNI config string) and renders it as
YAML without a YAML library: the document shape is fixed, every scalar is emitted as a
JSON string (a valid YAML double-quoted scalar) and the config as a literal block.
Nothing here touches the OS or imports anything outside the standard library.
"""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
import json
import re
from collections.abc import Mapping

from sriov.errors import InvalidInputError

NAD_API_VERSION = "k8s.cni.cncf.io/v1"
NAD_KIND = "NetworkAttachmentDefinition"
RESOURCE_NAME_ANNOTATION = "k8s.v1.cni.cncf.io/resourceName"
DEFAULT_CNI_VERSION = "1.0.0"
MIN_MTU = 68
MAX_MTU = 65535
MAX_VLAN = 4094

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


class IpamKind(enum.StrEnum):
    """The IPAM a generated NAD delegates to (``none`` = no ``ipam`` block)."""

    HOST_LOCAL = "host-local"
    DHCP = "dhcp"
    STATIC = "static"
    NONE = "none"


class OnOff(enum.StrEnum):
    """sriov-cni spells boolean VF settings ``on``/``off``."""

    ON = "on"
    OFF = "off"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class NadOptions:
    """Everything that goes into one generated NAD; ``None`` leaves a key out."""

    name: str
    namespace: str = "default"
    resource_name: str
    """Full device-plugin resource name, e.g. ``intel.com/sriov_netdevice``."""
    dpdk: bool = False
    """The pool hands out vfio-pci/uio VFs: no netdev, so no IPAM unless asked for."""
    ipam: IpamKind | None = None
    """``None`` picks the default: ``none`` for DPDK pools, ``host-local`` otherwise."""
    subnet: str | None = None
    """host-local subnet CIDR, e.g. ``10.56.217.0/24``."""
    address: str | None = None
    """static address with prefix length, e.g. ``10.56.217.10/24``."""
    vlan: int | None = None
    mtu: int | None = None
    spoofchk: OnOff | None = None
    trust: OnOff | None = None
    cni_version: str = DEFAULT_CNI_VERSION


def default_nad_name(resource_name: str) -> str:
    """``intel.com/sriov_netdevice`` -> ``sriov-netdevice`` (a valid DNS-1123 name)."""
    base = resource_name.rsplit("/", 1)[-1].lower()
    cleaned = re.sub(r"[^a-z0-9-]+", "-", base).strip("-")
    return cleaned[:253] or "sriov-network"


def _check_name(field: str, value: str, *, subdomain: bool) -> None:
    pattern, limit = (_DNS_SUBDOMAIN, 253) if subdomain else (_DNS_LABEL, 63)
    if not value or len(value) > limit or not pattern.fullmatch(value):
        raise InvalidInputError(
            field, value,
            f"must be a DNS-1123 {'subdomain' if subdomain else 'label'}: lower-case "
            f"letters, digits and '-', at most {limit} characters")


def resolve_ipam(opts: NadOptions) -> IpamKind:
    """The effective IPAM kind, after applying defaults and implied choices."""
    if opts.ipam is not None:
        return opts.ipam
    if opts.address is not None:
        return IpamKind.STATIC
    if opts.subnet is not None:
        return IpamKind.HOST_LOCAL
    return IpamKind.NONE if opts.dpdk else IpamKind.HOST_LOCAL


def _ipam_block(opts: NadOptions) -> dict[str, object] | None:
    kind = resolve_ipam(opts)
    if kind is not IpamKind.HOST_LOCAL and opts.subnet is not None:
        raise InvalidInputError(
            "--subnet", opts.subnet, f"only used with --ipam host-local, not {kind}"
        )
    if kind is not IpamKind.STATIC and opts.address is not None:
        raise InvalidInputError(
            "--address", opts.address, f"only used with --ipam static, not {kind}"
        )
    if kind is IpamKind.HOST_LOCAL:
        if opts.subnet is None:
            raise InvalidInputError(
                "--subnet",
                None,
                "--ipam host-local needs --subnet CIDR (or use --ipam dhcp|static|none)",
            )
        try:
            network = ipaddress.ip_network(opts.subnet, strict=True)
        except ValueError as e:
            raise InvalidInputError("--subnet", opts.subnet, str(e)) from e
        if network.max_prefixlen - network.prefixlen < 2:
            raise InvalidInputError("--subnet", opts.subnet, "must leave at least 2 host bits")
        return {"type": "host-local", "subnet": str(network)}
    if kind is IpamKind.STATIC:
        if opts.address is None:
            raise InvalidInputError("--address", None, "--ipam static needs --address CIDR")
        if "/" not in opts.address:
            raise InvalidInputError(
                "--address", opts.address, "needs a prefix length, e.g. 10.1.1.5/24"
            )
        try:
            interface = ipaddress.ip_interface(opts.address)
        except ValueError as e:
            raise InvalidInputError("--address", opts.address, str(e)) from e
        return {"type": "static", "addresses": [{"address": str(interface)}]}
    if kind is IpamKind.DHCP:
        return {"type": "dhcp"}
    return None


def cni_config(opts: NadOptions) -> dict[str, object]:
    """The CNI network config (``spec.config``) as a dict; ``deviceID`` is left to Multus."""
    config: dict[str, object] = {"cniVersion": opts.cni_version, "name": opts.name, "type": "sriov"}
    if opts.vlan is not None:
        if not 0 <= opts.vlan <= MAX_VLAN:
            raise InvalidInputError("--vlan", opts.vlan, f"must be 0..{MAX_VLAN}")
        config["vlan"] = opts.vlan
    if opts.spoofchk is not None:
        config["spoofchk"] = str(opts.spoofchk)
    if opts.trust is not None:
        config["trust"] = str(opts.trust)
    if opts.mtu is not None:
        if not MIN_MTU <= opts.mtu <= MAX_MTU:
            raise InvalidInputError("--mtu", opts.mtu, f"must be {MIN_MTU}..{MAX_MTU}")
        if opts.dpdk:
            raise InvalidInputError(
                "--mtu", opts.mtu, "a DPDK pool's VFs have no netdev to set it on"
            )
        config["mtu"] = opts.mtu
    ipam = _ipam_block(opts)
    if ipam is not None:
        config["ipam"] = ipam
    return config


def build_nad(opts: NadOptions) -> dict[str, object]:
    """The NetworkAttachmentDefinition object for ``opts`` (validated)."""
    _check_name("--name", opts.name, subdomain=True)
    _check_name("--namespace", opts.namespace, subdomain=False)
    if not opts.resource_name or "/" not in opts.resource_name:
        raise InvalidInputError("resource name", opts.resource_name, "expected <prefix>/<name>")
    config = cni_config(opts)
    return {
        "apiVersion": NAD_API_VERSION,
        "kind": NAD_KIND,
        "metadata": {
            "name": opts.name,
            "namespace": opts.namespace,
            "annotations": {RESOURCE_NAME_ANNOTATION: opts.resource_name},
        },
        "spec": {"config": json.dumps(config, indent=2) + "\n"},
    }


def render_yaml(nad: Mapping[str, object]) -> str:
    """Render a NAD object from :func:`build_nad` as a YAML document."""
    metadata = nad.get("metadata")
    spec = nad.get("spec")
    if not isinstance(metadata, Mapping) or not isinstance(spec, Mapping):
        raise InvalidInputError("NAD", nad, "needs 'metadata' and 'spec' mappings")
    lines = [
        f"apiVersion: {nad['apiVersion']}",
        f"kind: {nad['kind']}",
        "metadata:",
        f"  name: {json.dumps(metadata['name'])}",
        f"  namespace: {json.dumps(metadata['namespace'])}",
    ]
    annotations = metadata.get("annotations") or {}
    if annotations:
        lines.append("  annotations:")
        lines.extend(f"    {json.dumps(k)}: {json.dumps(v)}" for k, v in annotations.items())
    lines.append("spec:")
    lines.append("  config: |")
    lines.extend(f"    {line}" for line in str(spec["config"]).splitlines())
    return "\n".join(lines) + "\n"
