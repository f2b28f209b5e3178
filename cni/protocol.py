"""The CNI wire protocol: environment parsing, version negotiation, the Result model.

Pure: no I/O. Covers CNI spec 0.1.0 .. 1.1.0 (``SUPPORTED_VERSIONS``). Result conversion
follows libcni's ``pkg/types/{020,040,100}`` rules (see docs/cni.md).
"""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
import re
from collections.abc import Mapping
from typing import Any

from cni.errors import CniCode, CniError, env_error
from sriov import validate
from sriov.errors import InvalidInputError

SUPPORTED_VERSIONS = ("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
CURRENT_VERSION = "1.1.0"
CONTAINER_ID_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$")
MAX_CONTAINER_ID = 200
"""``<containerID>-<ifname>`` names a state file: it must fit NAME_MAX (255 bytes)."""


class Command(enum.StrEnum):
    ADD = "ADD"
    DEL = "DEL"
    CHECK = "CHECK"
    GC = "GC"
    STATUS = "STATUS"
    VERSION = "VERSION"


_A, _D, _C, _G, _S = Command.ADD, Command.DEL, Command.CHECK, Command.GC, Command.STATUS
# env var -> commands that require it (Go skel getCmdArgsFromEnv; CNI_PATH stricter than spec)
REQUIRED_ENV: Mapping[str, frozenset[Command]] = {
    "CNI_CONTAINERID": frozenset({_A, _D, _C}),
    "CNI_NETNS": frozenset({_A, _C}),
    "CNI_IFNAME": frozenset({_A, _D, _C}),
    "CNI_PATH": frozenset({_A, _D, _C, _G, _S}),
}
# minimum config cniVersion per verb (skel checkVersionAndCall)
MIN_VERSION: Mapping[Command, str] = {_C: "0.4.0", _G: "1.1.0", _S: "1.1.0"}


def version_tuple(version: str) -> tuple[int, int, int]:
    """``"0.3.1"`` -> (0, 3, 1); empty means 0.1.0 (libcni ParseVersion). Raises code 1."""
    if not version:
        return (0, 1, 0)
    parts = version.split(".")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise CniError(CniCode.INCOMPATIBLE_VERSION, f"invalid cniVersion {version!r}")
    return (int(parts[0]), int(parts[1]), int(parts[2]))


def require_supported(version: str) -> str:
    """Return the (normalised) version or raise code 1."""
    v = version or "0.1.0"
    version_tuple(v)
    if v not in SUPPORTED_VERSIONS:
        raise CniError(
            CniCode.INCOMPATIBLE_VERSION,
            f"unsupported cniVersion {version!r}",
            "supported: " + ", ".join(SUPPORTED_VERSIONS),
        )
    return v


def require_version_for(command: Command, version: str) -> None:
    """Refuse CHECK below 0.4.0 and GC/STATUS below 1.1.0 (code 1)."""
    minimum = MIN_VERSION.get(command)
    if minimum and version_tuple(version) < version_tuple(minimum):
        raise CniError(
            CniCode.INCOMPATIBLE_VERSION,
            f"config version {version!r} does not allow {command}",
            f"{command} needs cniVersion >= {minimum}",
        )


#: The CNI_ARGS keys the Go plugins (sriov-cni, macvlan) declare: their ``envArgs`` struct.
KNOWN_CNI_ARGS = ("IgnoreUnknown", "MAC")


def parse_cni_args(raw: str, *, strict: bool = True) -> tuple[tuple[str, str], ...]:
    """Parse ``K1=V1;K2=V2`` as the Go plugins' ``types.LoadArgs`` does on ADD (``strict``).

    Strict: every pair is exactly ``KEY=VALUE`` (an empty pair, e.g. a trailing ``;``, is
    malformed), ``IgnoreUnknown`` is a boolean (1/0/true/false, any case), and a key other than
    ``MAC`` needs ``IgnoreUnknown`` true, or it is code 4 (upstream: "ARGS: unknown args").
    Not strict (DEL, CHECK, GC, STATUS: the Go plugins never parse CNI_ARGS there, so nothing
    in it may fail them): malformed pairs are skipped, unknown keys kept."""
    pairs: list[tuple[str, str]] = []
    if not raw:
        return ()
    for item in raw.split(";"):
        key, sep, value = item.partition("=")
        if not sep or not key or "=" in value:
            if strict:
                raise env_error("CNI_ARGS", f"malformed pair {item!r} (expected KEY=VALUE)")
            continue
        pairs.append((key, value))
    if strict:
        ignore_unknown = False
        for key, value in pairs:
            if key == "IgnoreUnknown":
                if value.lower() not in ("1", "true", "0", "false"):
                    raise env_error("CNI_ARGS", f"IgnoreUnknown={value!r}: expected 1/0/true/false")
                ignore_unknown = value.lower() in ("1", "true")
        unknown = [f"{k}={v}" for k, v in pairs if k not in KNOWN_CNI_ARGS]
        if unknown and not ignore_unknown:
            known = ", ".join(KNOWN_CNI_ARGS)
            raise env_error("CNI_ARGS", f"unknown args {unknown} (known: {known}; runtimes add "
                                        "IgnoreUnknown=1 to pass their own keys)")
    return tuple(pairs)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class CmdArgs:
    """The validated CNI environment of one invocation."""

    command: Command
    container_id: str = ""
    netns: str = ""
    ifname: str = ""
    args: tuple[tuple[str, str], ...] = ()
    path: tuple[str, ...] = ()

    def arg(self, key: str) -> str | None:
        """Last value of ``key`` in ``CNI_ARGS`` (keys compared exactly), or None."""
        found = None
        for k, v in self.args:
            if k == key:
                found = v
        return found

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> CmdArgs:
        raw_cmd = env.get("CNI_COMMAND", "")
        if not raw_cmd:
            raise env_error("CNI_COMMAND", "required environment variable is missing")
        try:
            command = Command(raw_cmd)
        except ValueError:
            raise env_error("CNI_COMMAND", f"unknown CNI_COMMAND: {raw_cmd}") from None
        missing = [
            var for var, cmds in REQUIRED_ENV.items() if command in cmds and not env.get(var)
        ]
        if missing:
            raise CniError(
                CniCode.INVALID_ENV, "required env variables [" + ",".join(missing) + "] missing"
            )
        if command is Command.VERSION:
            return cls(command=command)
        container_id = env.get("CNI_CONTAINERID", "")
        if container_id and (
            len(container_id) > MAX_CONTAINER_ID or not CONTAINER_ID_RE.fullmatch(container_id)
        ):
            shown = repr(container_id[:64]) + ("..." if len(container_id) > 64 else "")
            raise env_error(
                "CNI_CONTAINERID",
                f"invalid container id {shown} (must match {CONTAINER_ID_RE.pattern}, "
                f"at most {MAX_CONTAINER_ID} characters)",
            )
        ifname = env.get("CNI_IFNAME", "")
        if ifname:
            try:
                validate.ifname(ifname)
            except InvalidInputError as e:
                raise env_error("CNI_IFNAME", str(e)) from None
        netns = env.get("CNI_NETNS", "")
        if "\0" in netns:
            raise env_error("CNI_NETNS", "contains a NUL byte")
        path = tuple(p for p in env.get("CNI_PATH", "").split(":") if p)
        return cls(
            command=command,
            container_id=container_id,
            netns=netns,
            ifname=ifname,
            args=parse_cni_args(env.get("CNI_ARGS", ""), strict=command is Command.ADD),
            path=path,
        )


# ---------------------------------------------------------------- result model


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Interface:
    name: str
    mac: str = ""
    mtu: int = 0
    sandbox: str = ""
    socket_path: str = ""
    pci_id: str = ""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class IPConfig:
    address: str
    """CIDR form, e.g. ``10.1.2.3/24``."""
    gateway: str = ""
    interface: int | None = None

    @property
    def family(self) -> int:
        return ipaddress.ip_interface(self.address).version


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Route:
    dst: str
    gw: str = ""
    mtu: int = 0
    advmss: int = 0
    priority: int = 0
    table: int | None = None
    scope: int | None = None

    @property
    def family(self) -> int:
        return ipaddress.ip_network(self.dst, strict=False).version


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class DNS:
    nameservers: tuple[str, ...] = ()
    domain: str = ""
    search: tuple[str, ...] = ()
    options: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.nameservers:
            out["nameservers"] = list(self.nameservers)
        if self.domain:
            out["domain"] = self.domain
        if self.search:
            out["search"] = list(self.search)
        if self.options:
            out["options"] = list(self.options)
        return out

    @classmethod
    def from_dict(cls, obj: Any) -> DNS:
        if not isinstance(obj, dict):
            return cls()
        return cls(
            nameservers=tuple(_str_list(obj, "nameservers")),
            domain=str(obj.get("domain") or ""),
            search=tuple(_str_list(obj, "search")),
            options=tuple(_str_list(obj, "options")),
        )


EMPTY_DNS = DNS()


def _str_list(obj: Mapping[str, Any], key: str) -> list[str]:
    value = obj.get(key) or []
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise _decode(f"{key} must be a list of strings")
    return value


def _decode(reason: str) -> CniError:
    return CniError(CniCode.DECODING_FAILURE, f"cannot decode result: {reason}")


def route_from_json(obj: Any) -> Route:
    """A CNI route object (spec 1.1 keys: dst, gw, mtu, advmss, priority, table, scope)."""
    if not isinstance(obj, dict) or not isinstance(obj.get("dst"), str):
        raise _decode("route needs a string 'dst'")
    numbers: dict[str, int | None] = {}
    for key in ("mtu", "advmss", "priority", "table", "scope"):
        value = obj.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < 0):
            raise _decode(f"route {obj['dst']}: {key} must be a non-negative integer")
        numbers[key] = value
    return Route(
        dst=obj["dst"],
        gw=str(obj.get("gw") or ""),
        mtu=numbers["mtu"] or 0,
        advmss=numbers["advmss"] or 0,
        priority=numbers["priority"] or 0,
        table=numbers["table"],
        scope=numbers["scope"],
    )


def _route_to(route: Route, *, rich: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"dst": route.dst}
    if route.gw:
        out["gw"] = route.gw
    if rich:
        for key in ("mtu", "advmss", "priority"):
            if getattr(route, key):
                out[key] = getattr(route, key)
        if route.table is not None:
            out["table"] = route.table
        if route.scope is not None:
            out["scope"] = route.scope
    return out


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Result:
    cni_version: str = CURRENT_VERSION
    interfaces: tuple[Interface, ...] = ()
    ips: tuple[IPConfig, ...] = ()
    routes: tuple[Route, ...] = ()
    dns: DNS = EMPTY_DNS

    @classmethod
    def from_json(cls, obj: Any) -> Result:
        """Accept any version's shape (0.1/0.2 ``ip4``/``ip6``; 0.3/0.4 ``ips[].version``; 1.x)."""
        if not isinstance(obj, dict):
            raise _decode("result must be a JSON object")
        version = str(obj.get("cniVersion") or "")
        try:
            if (
                "ip4" in obj
                or "ip6" in obj
                or (version_tuple(version) < (0, 3, 0) and "ips" not in obj)
            ):
                return cls._from_legacy(obj, version)
            interfaces = tuple(
                Interface(
                    name=str(i["name"]),
                    mac=str(i.get("mac") or ""),
                    mtu=int(i.get("mtu") or 0),
                    sandbox=str(i.get("sandbox") or ""),
                    socket_path=str(i.get("socketPath") or ""),
                    pci_id=str(i.get("pciID") or ""),
                )
                for i in obj.get("interfaces") or []
            )
            ips = tuple(
                IPConfig(
                    address=str(ip["address"]),
                    gateway=str(ip.get("gateway") or ""),
                    interface=ip.get("interface"),
                )
                for ip in obj.get("ips") or []
            )
            for ip in ips:
                ipaddress.ip_interface(ip.address)
            routes = tuple(route_from_json(r) for r in obj.get("routes") or [])
        except (KeyError, TypeError, ValueError) as e:
            raise _decode(f"{type(e).__name__}: {e}") from None
        return cls(
            cni_version=version,
            interfaces=interfaces,
            ips=ips,
            routes=routes,
            dns=DNS.from_dict(obj.get("dns")),
        )

    @classmethod
    def _from_legacy(cls, obj: Mapping[str, Any], version: str) -> Result:
        ips: list[IPConfig] = []
        routes: list[Route] = []
        for key in ("ip4", "ip6"):
            section = obj.get(key)
            if not section:
                continue
            ips.append(
                IPConfig(address=str(section["ip"]), gateway=str(section.get("gateway") or ""))
            )
            routes.extend(route_from_json(r) for r in section.get("routes") or [])
        return cls(
            cni_version=version,
            ips=tuple(ips),
            routes=tuple(routes),
            dns=DNS.from_dict(obj.get("dns")),
        )

    def with_version(self, version: str) -> Result:
        return dataclasses.replace(self, cni_version=version)

    def to_dict(self, version: str) -> dict[str, Any]:
        """Convert to the shape of ``version`` (A.7); the legacy form fails without an IP (999)."""
        vt = version_tuple(version)
        if vt < (0, 3, 0):
            return self._to_legacy(version)
        rich = vt >= (1, 0, 0)
        out: dict[str, Any] = {"cniVersion": version}
        if self.interfaces:
            out["interfaces"] = [self._iface_to(i, rich=rich) for i in self.interfaces]
        if self.ips:
            ips = []
            for ip in self.ips:
                entry: dict[str, Any] = {}
                if not rich:
                    entry["version"] = str(ip.family)
                entry["address"] = ip.address
                if ip.gateway:
                    entry["gateway"] = ip.gateway
                if ip.interface is not None:
                    entry["interface"] = ip.interface
                ips.append(entry)
            out["ips"] = ips
        if self.routes:
            out["routes"] = [_route_to(r, rich=rich) for r in self.routes]
        dns = self.dns.to_dict()
        if dns:
            out["dns"] = dns
        return out

    @staticmethod
    def _iface_to(iface: Interface, *, rich: bool) -> dict[str, Any]:
        out: dict[str, Any] = {"name": iface.name}
        if iface.mac:
            out["mac"] = iface.mac
        if rich and iface.mtu:
            out["mtu"] = iface.mtu
        if iface.sandbox:
            out["sandbox"] = iface.sandbox
        if rich and iface.socket_path:
            out["socketPath"] = iface.socket_path
        if rich and iface.pci_id:
            out["pciID"] = iface.pci_id
        return out

    def _to_legacy(self, version: str) -> dict[str, Any]:
        out: dict[str, Any] = {"cniVersion": version}
        for family, key in ((4, "ip4"), (6, "ip6")):
            ip = next((i for i in self.ips if i.family == family), None)
            if ip is None:
                continue
            section: dict[str, Any] = {"ip": ip.address}
            if ip.gateway:
                section["gateway"] = ip.gateway
            routes = [_route_to(r, rich=False) for r in self.routes if r.family == family]
            if routes:
                section["routes"] = routes
            out[key] = section
        if "ip4" not in out and "ip6" not in out:
            raise CniError(
                CniCode.INTERNAL,
                f"cannot convert result to cniVersion {version}",
                "a 0.1.0/0.2.0 result needs at least one IP address",
            )
        dns = self.dns.to_dict()
        if dns:
            out["dns"] = dns
        return out


def version_answer(request_version: str | None) -> dict[str, Any]:
    """The VERSION reply: echo the request's cniVersion (spec) or our current one."""
    return {
        "cniVersion": request_version or CURRENT_VERSION,
        "supportedVersions": list(SUPPORTED_VERSIONS),
    }
