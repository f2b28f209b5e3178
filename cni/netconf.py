"""Parse and validate the plugin's network configuration (stdin JSON). Pure, no I/O.

Keys are the sriov-cni ones, unchanged, plus Multus' ``pciBusID`` and ours (``mtu``,
``fallback``, ``podResourcesSocket``, ``resourceName``, ``stateDir``). Unknown keys pass
through into ``extra``; a known key with a wrong type or value is code 7 naming key and value.

Top-level keys are matched as sriov-cni's Go decoder matches them (:mod:`sriov.gojson`):
exact name first, else case-insensitively (``DeviceID``, ``Vlan``, ``MAC``, ``SpoofChk``),
and a key given twice means its last value. Where sriov-cni accepts a value without
complaint (``logLevel: verbose``, ``spoofchk: "ON"``) so do we, with the same meaning, and
say so in ``warnings`` (logged by :mod:`cni.skel`).
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from typing import Any

from cni.errors import CniCode, CniError, config_error, env_error
from cni.protocol import (
    CONTAINER_ID_RE,
    DNS,
    EMPTY_DNS,
    CmdArgs,
    Command,
    Result,
    require_supported,
)
from sriov import gojson, validate
from sriov.errors import InvalidInputError
from sriov.types import IfName, LinkState, MacAddress, PciAddress, VfSettings, VlanProto

LOG_LEVELS = ("panic", "error", "warning", "info", "debug")
KNOWN_KEYS = frozenset(
    {
        "cniVersion",
        "cniVersions",
        "name",
        "type",
        "deviceID",
        "pciBusID",
        "vlan",
        "vlanQoS",
        "vlanProto",
        "mac",
        "spoofchk",
        "trust",
        "link_state",
        "min_tx_rate",
        "max_tx_rate",
        "logLevel",
        "logFile",
        "ipam",
        "dns",
        "capabilities",
        "runtimeConfig",
        "args",
        "prevResult",
        "mtu",
        "fallback",
        "podResourcesSocket",
        "resourceName",
        "stateDir",
        "cni.dev/valid-attachments",
        "cni.dev/attachments",
    }
)
GO_INTERNAL_KEYS = ("Master", "MTU", "VFID", "OrigVfState")
"""sriov-cni fields it decodes but then overwrites (our ``mtu`` is a different key): ignored."""
_MATCH_ORDER = (*sorted(KNOWN_KEYS), *GO_INTERNAL_KEYS)  # "mtu" before "MTU": Mtu is ours


MAX_NETWORK_NAME = 253
"""A DNS subdomain, as a NetworkAttachmentDefinition name; fits NAME_MAX as a directory."""


class FallbackType(enum.StrEnum):
    MACVLAN = "macvlan"
    IPVLAN = "ipvlan"


FALLBACK_MODES: Mapping[FallbackType, tuple[str, ...]] = {
    FallbackType.MACVLAN: ("bridge", "private", "vepa", "passthru"),
    FallbackType.IPVLAN: ("l2", "l3", "l3s"),
}


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class FallbackConf:
    """``fallback`` object: a macvlan/ipvlan on ``master`` when no VF is allocated."""

    type: FallbackType
    master: IfName
    mode: str
    vlan: int | None = None
    mtu: int | None = None
    mac: MacAddress | None = None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Attachment:
    container_id: str
    ifname: str


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class NetConf:
    raw: bytes
    """The full stdin config, byte-exact, for delegating to IPAM."""
    cni_version: str
    name: str
    type: str
    device_id: PciAddress | None = None
    vlan: int | None = None
    vlan_qos: int | None = None
    vlan_proto: VlanProto | None = None
    mac: MacAddress | None = None
    spoofchk: bool | None = None
    trust: bool | None = None
    link_state: LinkState | None = None
    min_tx_rate: int | None = None
    max_tx_rate: int | None = None
    log_level: str = "info"
    log_file: str = ""
    ipam: Mapping[str, Any] | None = None
    dns: DNS = EMPTY_DNS
    capabilities: Mapping[str, bool] = dataclasses.field(default_factory=dict)
    runtime_config: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    args: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    prev_result: Result | None = None
    mtu: int | None = None
    fallback: FallbackConf | None = None
    pod_resources_socket: str | None = None
    resource_name: str | None = None
    state_dir: str | None = None
    valid_attachments: tuple[Attachment, ...] | None = None
    extra: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    """Accepted as sriov-cni accepts it, but probably not what was meant."""

    @property
    def ipam_type(self) -> str:
        return str(self.ipam.get("type", "")) if self.ipam else ""

    def vf_settings(self) -> VfSettings:
        """The PF-side VF settings this config asks for (``None`` = leave untouched)."""
        return VfSettings(
            mac=self.mac,
            vlan=self.vlan,
            qos=self.vlan_qos,
            vlan_proto=self.vlan_proto,
            spoofchk=self.spoofchk,
            trust=self.trust,
            link_state=self.link_state,
            min_tx_rate=self.min_tx_rate,
            max_tx_rate=self.max_tx_rate,
        )

    @classmethod
    def parse(cls, raw: bytes, cmd_args: CmdArgs | None = None) -> NetConf:
        try:
            obj = gojson.loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError) as e:  # deep nesting
            raise CniError(
                CniCode.DECODING_FAILURE, "cannot decode network config JSON", str(e)
            ) from None
        if not isinstance(obj, dict):
            raise CniError(CniCode.DECODING_FAILURE, "network config must be a JSON object")
        return _Parser(obj, raw, cmd_args).build()


def _int(
    obj: Mapping[str, Any], key: str, lo: int, hi: int, label: str | None = None
) -> int | None:
    if key not in obj or obj[key] is None:
        return None
    value = obj[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise config_error(label or key, value, "must be an integer")
    if not lo <= value <= hi:
        raise config_error(label or key, value, f"must be in {lo}..{hi}")
    return value


def _str(obj: Mapping[str, Any], key: str, label: str | None = None) -> str | None:
    if key not in obj or obj[key] is None:
        return None
    if not isinstance(obj[key], str):
        raise config_error(label or key, obj[key], "must be a string")
    return obj[key]


def _obj(obj: Mapping[str, Any], key: str) -> dict[str, Any] | None:
    if key not in obj or obj[key] is None:
        return None
    if not isinstance(obj[key], dict):
        raise config_error(key, obj[key], "must be a JSON object")
    return obj[key]


def _on_off(obj: Mapping[str, Any], key: str, warnings: list[str]) -> bool | None:
    """sriov-cni: unset when empty; exactly ``on`` is on, every other string is off."""
    value = _str(obj, key)
    if not value:
        return None
    if value not in ("on", "off"):
        warnings.append(f"{key}: {value!r} is neither 'on' nor 'off'; treated as 'off' "
                        "(as sriov-cni, which only turns it on for exactly 'on')")
    return value == "on"


def _pci(value: Any, key: str) -> PciAddress:
    try:
        return validate.pci_address(value)
    except InvalidInputError as e:
        raise config_error(key, value, e.reason) from None


def _mac(value: Any, key: str) -> MacAddress:
    try:
        return validate.mac_address(value)
    except InvalidInputError as e:
        raise config_error(key, value, e.reason) from None


def _go_keys(obj: dict[str, Any], warnings: list[str]) -> dict[str, Any]:
    """Top-level keys under their canonical names, matched as sriov-cni's decoder does."""
    matched = gojson.match_fields(obj, _MATCH_ORDER)
    for written, canonical in matched.case_variants:
        warnings.append(f"{written}: accepted as {canonical!r} (keys are case-insensitive in "
                        "sriov-cni; please fix the spelling)")
    for canonical in matched.repeated:
        warnings.append(f"{canonical}: given more than once; the last one wins (as sriov-cni)")
    for key in GO_INTERNAL_KEYS:
        if key in matched.fields:
            warnings.append(f"{matched.spelled[key]}: set by sriov-cni itself, ignored")
    fields = {k: v for k, v in matched.fields.items() if k not in GO_INTERNAL_KEYS}
    fields.update((k, obj[k]) for k in matched.unknown)
    return fields


class _Parser:
    def __init__(self, obj: dict[str, Any], raw: bytes, cmd_args: CmdArgs | None) -> None:
        self.warnings: list[str] = []
        self.obj, self.raw, self.cmd_args = _go_keys(obj, self.warnings), raw, cmd_args

    def build(self) -> NetConf:
        o = self.obj
        version = require_supported(_str(o, "cniVersion") or "")
        name = _str(o, "name")
        if not name:
            raise CniError(CniCode.INVALID_CONFIG, "missing network name ('name')")
        if len(name) > MAX_NETWORK_NAME or not CONTAINER_ID_RE.fullmatch(name):
            shown = name if len(name) <= 64 else name[:64] + "..."
            raise config_error("name", shown, f"must match {CONTAINER_ID_RE.pattern} and be at "
                               f"most {MAX_NETWORK_NAME} characters (it names IPAM directories)")
        runtime = _obj(o, "runtimeConfig") or {}
        vlan, qos, proto = self._vlan()
        min_rate = _int(o, "min_tx_rate", 0, 2**32 - 1)
        max_rate = _int(o, "max_tx_rate", 0, 2**32 - 1)
        if min_rate and max_rate and min_rate > max_rate:
            raise config_error("min_tx_rate", min_rate, f"is greater than max_tx_rate {max_rate}")
        link_state = _str(o, "link_state") or None  # sriov-cni: "" is unset
        if link_state is not None and link_state not in tuple(LinkState):
            raise config_error("link_state", link_state,
                               "must be auto, enable or disable (lower case, as sriov-cni)")
        log_level = self._log_level()
        ipam = _obj(o, "ipam")
        if ipam is not None:
            ipam_type = ipam.get("type", "")
            if not isinstance(ipam_type, str) or "/" in ipam_type or "\\" in ipam_type:
                raise config_error(
                    "ipam.type", ipam_type, "must be a plugin name without path separators"
                )
        capabilities = _obj(o, "capabilities") or {}
        if not all(isinstance(v, bool) for v in capabilities.values()):
            raise config_error("capabilities", capabilities, "values must be booleans")
        try:
            dns = DNS.from_dict(_obj(o, "dns") or {})
        except CniError as e:
            raise config_error("dns", o.get("dns"), e.msg) from None
        return NetConf(
            raw=self.raw,
            cni_version=version,
            name=name,
            type=_str(o, "type") or "",
            device_id=self._device_id(runtime),
            vlan=vlan,
            vlan_qos=qos,
            vlan_proto=proto,
            mac=self._mac(runtime),
            spoofchk=_on_off(o, "spoofchk", self.warnings),
            trust=_on_off(o, "trust", self.warnings),
            link_state=LinkState(link_state) if link_state else None,
            min_tx_rate=min_rate,
            max_tx_rate=max_rate,
            log_level=log_level,
            log_file=_str(o, "logFile") or "",
            ipam=ipam,
            dns=dns,
            capabilities=capabilities,
            runtime_config=runtime,
            args=_obj(o, "args") or {},
            prev_result=self._prev_result(),
            mtu=_int(o, "mtu", 68, 65535),
            fallback=self._fallback(),
            pod_resources_socket=self._abs_path("podResourcesSocket"),
            resource_name=_str(o, "resourceName"),
            state_dir=self._abs_path("stateDir"),
            valid_attachments=self._attachments(),
            extra={k: v for k, v in o.items() if k not in KNOWN_KEYS},
            warnings=tuple(self.warnings),
        )

    def _log_level(self) -> str:
        """sriov-cni: a known name in any case; anything else (``warn``, ``verbose``, "")
        is its default, info."""
        raw = _str(self.obj, "logLevel")
        if raw is None or raw.lower() in LOG_LEVELS:
            return (raw or "info").lower()
        if raw:
            self.warnings.append(f"logLevel: {raw!r} is not one of {', '.join(LOG_LEVELS)}; "
                                 "using info (as sriov-cni)")
        return "info"

    def _vlan(self) -> tuple[int | None, int | None, VlanProto | None]:
        o = self.obj
        vlan = _int(o, "vlan", 0, 4094)
        qos = _int(o, "vlanQoS", 0, 7)
        proto_raw = _str(o, "vlanProto")
        proto = None
        if proto_raw is not None:
            try:
                proto = VlanProto(proto_raw.lower())
            except ValueError:
                raise config_error("vlanProto", proto_raw, "must be 802.1q or 802.1ad") from None
        if qos is not None and vlan is None:
            raise config_error("vlanQoS", qos, "requires 'vlan'")
        if qos and not vlan:
            raise config_error("vlanQoS", qos, "a non-zero QoS needs a non-zero vlan")
        if proto is not None and vlan is None:
            raise config_error("vlanProto", proto_raw, "requires 'vlan'")
        if proto is VlanProto.DOT1AD and not vlan:
            raise config_error("vlanProto", proto_raw, "802.1ad needs a non-zero vlan")
        return vlan, qos, proto

    def _device_id(self, runtime: Mapping[str, Any]) -> PciAddress | None:
        # precedence: runtimeConfig.deviceID > deviceID > pciBusID (Multus injects both top-level)
        for source, key in ((runtime, "deviceID"), (self.obj, "deviceID"), (self.obj, "pciBusID")):
            label = "runtimeConfig.deviceID" if source is runtime else key
            value = _str(source, key, label)  # a non-string (false, 0, []) is an error, not "unset"
            if value:
                return _pci(value, label)
        return None

    def _mac(self, runtime: Mapping[str, Any]) -> MacAddress | None:
        # precedence: mac < CNI_ARGS MAC= < runtimeConfig.mac (sriov-cni, macvlan)
        mac = None
        if _str(self.obj, "mac"):
            mac = _mac(self.obj["mac"], "mac")
        arg_mac = self.cmd_args.arg("MAC") if self.cmd_args else None
        if arg_mac:
            try:
                mac = validate.mac_address(arg_mac)
            except InvalidInputError as e:
                raise env_error("CNI_ARGS", f"MAC={arg_mac!r}: {e.reason}") from None
        runtime = gojson.match_fields(runtime, ("mac",)).fields  # Go: "MAC" works here too
        if _str(runtime, "mac", "runtimeConfig.mac"):
            mac = _mac(runtime["mac"], "runtimeConfig.mac")
        return mac

    def _prev_result(self) -> Result | None:
        prev = self.obj.get("prevResult")
        if not prev:
            return None
        try:
            return Result.from_json(prev)
        except Exception as e:  # 1e999 is an OverflowError, not a CniError
            msg = e.msg if isinstance(e, CniError) else f"{type(e).__name__}: {e}"
            if self.cmd_args is not None and self.cmd_args.command is Command.DEL:
                # DEL cleans up from its own record: a prevResult it cannot use must not block it
                self.warnings.append(f"DEL: ignoring an unusable prevResult ({msg})")
                return None
            raise config_error("prevResult", "...", msg) from None

    def _abs_path(self, key: str) -> str | None:
        value = _str(self.obj, key)
        if value is not None and (not value.startswith("/") or "\0" in value):
            raise config_error(key, value, "must be an absolute path")
        return value

    def _fallback(self) -> FallbackConf | None:
        fb = _obj(self.obj, "fallback")
        if fb is None:
            return None
        kind_raw = _str(fb, "type", "fallback.type")
        try:
            kind = FallbackType(kind_raw or "")
        except ValueError:
            raise config_error("fallback.type", kind_raw, "must be macvlan or ipvlan") from None
        master = _str(fb, "master", "fallback.master")
        if not master:
            raise config_error("fallback.master", master, "is required")
        try:
            master_if = validate.ifname(master)
        except InvalidInputError as e:
            raise config_error("fallback.master", master, e.reason) from None
        modes = FALLBACK_MODES[kind]
        mode = _str(fb, "mode", "fallback.mode") or modes[0]
        if mode not in modes:
            raise config_error(
                "fallback.mode", mode, f"{kind} mode must be one of " + ", ".join(modes)
            )
        mac = _str(fb, "mac", "fallback.mac")
        if mac is not None and kind is FallbackType.IPVLAN:
            raise config_error("fallback.mac", mac, "ipvlan shares the master's MAC")
        return FallbackConf(
            type=kind,
            master=master_if,
            mode=mode,
            vlan=_int(fb, "vlan", 1, 4094, "fallback.vlan"),
            mtu=_int(fb, "mtu", 68, 65535, "fallback.mtu"),
            mac=_mac(mac, "fallback.mac") if mac else None,
        )

    def _attachments(self) -> tuple[Attachment, ...] | None:
        found: list[Attachment] = []
        present = False
        for key in ("cni.dev/valid-attachments", "cni.dev/attachments"):
            items = self.obj.get(key)
            if items is None:
                continue
            present = True
            if not isinstance(items, list):
                raise config_error(key, items, "must be a list")
            for item in items:
                if (
                    not isinstance(item, dict)
                    or not isinstance(item.get("containerID"), str)
                    or not isinstance(item.get("ifname"), str)
                ):
                    raise config_error(key, item, "entries need string containerID and ifname")
                att = Attachment(container_id=item["containerID"], ifname=item["ifname"])
                if att not in found:
                    found.append(att)
        return tuple(found) if present else None
