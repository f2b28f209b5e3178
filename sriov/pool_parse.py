"""Field-by-field reading of the resource-pool config (helper of :mod:`sriov.pools`).

Walks a decoded JSON document (:func:`sriov.gojson.loads`) with upstream's decoding rules
and records every problem with its JSON path (``resourceList[1].selectors[0].pfNames[2]``):

- what sriov-network-device-plugin rejects (a type mismatch, a bad ``deviceType`` or
  ``resourceName``, ``isRdma`` with ``vdpaType``) is an **error**;
- what it accepts but that is probably a mistake (an unknown key, a value that can never
  match such as ``154C``, a malformed ``#`` range) is a **warning** and means exactly
  what it means upstream; in strict mode (``--strict-config``) it is an error too.

Pure: no I/O.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from typing import Any

from sriov import gojson, validate
from sriov.errors import InvalidInputError, PoolConfigError
from sriov.ranges import DeviceRef, parse_vf_indexes, upstream_vf_indexes
from sriov.selectors import DeviceType, SelectorSet, VdpaType

RESOURCE_NAME = re.compile(r"^[a-zA-Z0-9_-]+$")
RESOURCE_PREFIX = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_HEX_ID = re.compile(r"^(0[xX])?([0-9a-fA-F]{4})$")
_PKEY = re.compile(r"^(0[xX])?([0-9a-fA-F]{1,4})$")
_DRIVER = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_DECIMAL = re.compile(r"^[0-9]+$")
LINK_TYPES = ("ether", "infiniband")
AUX_TYPES = ("sf",)

POOL_KEYS = ("resourceName", "resourcePrefix", "deviceType", "excludeTopology", "selectors",
             "additionalInfo", "SelectorObjs")
GO_ONLY_POOL_KEYS = ("SelectorObj",)
"""Written by sriov-network-operator (``"SelectorObj": null``); upstream ignores it, so do we."""
_PCI_KEYS = ("vendors", "devices", "drivers")
SELECTOR_KEYS: dict[DeviceType, tuple[str, ...]] = {  # upstream's structs, per deviceType
    DeviceType.NET_DEVICE: (*_PCI_KEYS, "pciAddresses", "acpiIndexes", "pfNames", "rootDevices",
                            "linkTypes", "ddpProfiles", "pKeys", "isRdma", "needVhostNet",
                            "vdpaType"),
    DeviceType.AUX_NET_DEVICE: (*_PCI_KEYS, "acpiIndexes", "pfNames", "rootDevices", "linkTypes",
                                "isRdma", "needVhostNet", "auxTypes"),
    DeviceType.ACCELERATOR: (*_PCI_KEYS, "pciAddresses"),
}
_ALL_SELECTOR_KEYS = tuple(dict.fromkeys(k for keys in SELECTOR_KEYS.values() for k in keys))
GO_FIELD_SPELLINGS = frozenset({"IsRdma", "NeedVhostNet"})
"""Upstream's own (untagged Go field) spellings, written by the operator: no warning."""


class Problems:
    """Collects errors (with their field path) and warnings while walking a config."""

    def __init__(self, *, strict: bool = False) -> None:
        self.strict = strict
        self.errors: list[PoolConfigError] = []
        self.warnings: list[str] = []

    def add(self, field: str, reason: str) -> None:
        """Upstream rejects this too: always an error."""
        self.errors.append(PoolConfigError(field, reason))

    def doubt(self, field: str, reason: str) -> None:
        """Upstream accepts this: a warning, or an error in strict mode."""
        if self.strict:
            self.add(field, reason)
        else:
            self.warnings.append(f"{field}: {reason}" if field else reason)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class PoolEntry:
    index: int
    """Position in ``resourceList`` (for messages)."""
    name: str
    prefix: str | None
    device_type: DeviceType
    exclude_topology: bool
    selectors: tuple[SelectorSet, ...]
    additional_info: dict[str, dict[str, str]]


def json_type(value: object) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string",
            list: "a list", dict: "an object"}.get(type(value), type(value).__name__)


def _shown(path: str, key: str) -> str:
    shown = key if key.isprintable() and key.strip() and "." not in key else repr(key)
    return f"{path}.{shown}" if path else shown  # an empty or odd key is still named


def _fields(obj: Mapping[str, Any], path: str, known: tuple[str, ...], problems: Problems, *,
            ignored: tuple[str, ...] = (), elsewhere: tuple[str, ...] = (),
            context: str = "") -> dict[str, Any]:
    """Map keys onto ``known`` as Go does; unknown keys are ignored (and reported)."""
    matched = gojson.match_fields(obj, (*known, *ignored))
    for key in matched.unknown:
        field = _shown(path, key)
        if key in elsewhere:
            problems.doubt(field, f"not a selector for {context}, ignored (as upstream); "
                                  f"allowed: {', '.join(known)}")
            continue
        close = gojson.did_you_mean(key, known)
        hint = f"did you mean {close!r}?" if close else f"known keys: {', '.join(known)}"
        problems.doubt(field, f"unknown key, ignored (as upstream); {hint}")
    for written, canonical in matched.case_variants:
        if written not in GO_FIELD_SPELLINGS:
            problems.warnings.append(f"{_shown(path, written)}: accepted as {canonical!r} (keys "
                                     "are case-insensitive upstream; please fix the spelling)")
    for canonical in matched.repeated:
        problems.doubt(_shown(path, matched.spelled[canonical]),
                       f"{canonical!r} is given more than once; the last one wins (as upstream)")
    return {k: v for k, v in matched.fields.items() if k not in ignored}


def _hex_id(value: str) -> str:
    if not _HEX_ID.match(value):
        raise ValueError("expected 4 hex digits, e.g. '8086' or '0x8086'")
    canonical = _HEX_ID.match(value).group(2).lower()  # type: ignore[union-attr]
    if canonical != value:
        raise ValueError(f"upstream compares exactly with sysfs's lower-case ID, so this "
                         f"never matches; did you mean {canonical!r}?")
    return value


def _driver(value: str) -> str:
    if not _DRIVER.match(value):
        raise ValueError("not a driver name (letters, digits, '_', '-', '.')")
    return value


def _pci(value: str) -> str:
    canonical = validate.pci_address(value)
    if canonical != value:
        raise ValueError(f"upstream compares exactly, so this never matches; did you mean "
                         f"{canonical!r}?")
    return canonical


def _acpi_index(value: str) -> str:
    if not _DECIMAL.match(value):
        raise ValueError("expected a decimal ACPI index, e.g. '101'")
    return value


def _pf_name(value: str) -> str:
    return validate.ifname(value)


def _root_device(value: str) -> str:
    canonical = validate.pci_address(value)
    if canonical != value.lower():  # upstream compares case-insensitively (EqualFold)
        raise ValueError(f"upstream compares with the full PCI address, so this never "
                         f"matches; did you mean {canonical!r}?")
    return value


def _choice(allowed: tuple[str, ...]) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if value not in allowed:
            raise ValueError(f"expected one of {', '.join(allowed)}")
        return value
    return parse


def _nonempty(value: str) -> str:
    if not value.strip():
        raise ValueError("is empty")
    return value


def _pkey(value: str) -> str:
    m = _PKEY.match(value)
    if not m:
        raise ValueError("expected a 16-bit hex partition key, e.g. '0x7fff'")
    return "0x" + m.group(2).lower()


_LIST_KEYS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "vendors": ("vendors", _hex_id),
    "devices": ("devices", _hex_id),
    "drivers": ("drivers", _driver),
    "pciAddresses": ("pci_addresses", _pci),
    "acpiIndexes": ("acpi_indexes", _acpi_index),
    "pfNames": ("pf_names", _pf_name),
    "rootDevices": ("root_devices", _root_device),
    "linkTypes": ("link_types", _choice(LINK_TYPES)),
    "ddpProfiles": ("ddp_profiles", _nonempty),
    "pKeys": ("p_keys", _pkey),
    "auxTypes": ("aux_types", _choice(AUX_TYPES)),
}
_REF_KEYS = ("pfNames", "rootDevices")
_BOOL_KEYS = {"isRdma": "is_rdma", "needVhostNet": "need_vhost_net"}


def _device_ref(value: str, field: str, check: Callable[[str], str],
                problems: Problems) -> DeviceRef:
    """``<pf>[#<items>]``: what upstream selects, with a warning for what looks wrong."""
    device, sep, range_text = value.partition("#")
    _checked(device, field, check, problems, shown=value)
    if not sep:
        return DeviceRef(device=device)
    if "#" in range_text:  # upstream: more than one '#' selects nothing (the PF still matches)
        problems.doubt(field, f"{value!r}: more than one '#', so this entry selects no VF "
                              "(as upstream)")
        return DeviceRef(device=device, vf_indexes=frozenset(), range_text=range_text)
    if problems.strict:
        try:
            return DeviceRef(device=device, vf_indexes=parse_vf_indexes(range_text),
                             range_text=range_text)
        except InvalidInputError as e:
            problems.add(field, f"{value!r}: {e.what}: {e.reason}")
            return DeviceRef(device=device, vf_indexes=frozenset(), range_text=range_text)
    indexes, problem = upstream_vf_indexes(range_text)
    if problem:
        shown = ", ".join(str(i) for i in sorted(indexes)[:8]) or "none"
        problems.doubt(field, f"{value!r}: VF index range: {problem} (selects VFs: {shown})")
    return DeviceRef(device=device, vf_indexes=indexes, range_text=range_text)


def _checked(item: str, field: str, parse: Callable[[str], Any], problems: Problems, *,
             shown: str | None = None) -> Any:
    """``parse(item)``; a value upstream accepts but that looks wrong is kept as written."""
    try:
        return parse(item)
    except InvalidInputError as e:
        reason = f"{e.what}: {e.reason}"
    except ValueError as e:
        reason = str(e)
    problems.doubt(field, f"{shown or item!r}: {reason}")
    return item


def _string_list(value: object, key: str, field: str, problems: Problems) -> tuple[Any, ...]:
    if value is None:  # Go: a null slice, i.e. no filter
        return ()
    if not isinstance(value, list):
        problems.add(field, f"expected a list of strings, got {json_type(value)}")
        return ()
    parse = _LIST_KEYS[key][1]
    items: list[Any] = []
    for i, item in enumerate(value):
        if item is None:  # Go decodes null into "" without complaint
            item = ""
        if not isinstance(item, str):
            problems.add(f"{field}[{i}]", f"expected a string, got {json_type(item)}")
            continue
        if key in _REF_KEYS:
            parsed: Any = _device_ref(item, f"{field}[{i}]", parse, problems)
        else:
            parsed = _checked(item, f"{field}[{i}]", parse, problems)
        if parsed not in items:
            items.append(parsed)
    return tuple(items)


def parse_selector(obj: object, path: str, device_type: DeviceType,
                   problems: Problems) -> SelectorSet | None:
    if not isinstance(obj, dict):
        problems.add(path, f"expected a selector object, got {json_type(obj)}")
        return None
    fields = _fields(obj, path, SELECTOR_KEYS[device_type], problems,
                     elsewhere=_ALL_SELECTOR_KEYS, context=f"deviceType {device_type}")
    values: dict[str, Any] = {}
    for key, value in fields.items():
        field = f"{path}.{key}"
        if key in _LIST_KEYS:
            values[_LIST_KEYS[key][0]] = _string_list(value, key, field, problems)
        elif key in _BOOL_KEYS:
            if isinstance(value, bool):
                values[_BOOL_KEYS[key]] = value
            elif value is not None:
                problems.add(field, f"expected true or false, got {json_type(value)}")
        elif key == "vdpaType":
            if value in tuple(VdpaType):
                values["vdpa_type"] = VdpaType(value)
            elif value not in (None, ""):  # Go: empty means unset
                problems.add(field, f"expected one of {', '.join(VdpaType)}, got {value!r}")
    if values.get("is_rdma") and values.get("vdpa_type"):
        problems.add(f"{path}.vdpaType", "cannot be combined with isRdma: true")
    return SelectorSet(**values)


def _selectors(value: object, path: str, device_type: DeviceType,
               problems: Problems) -> tuple[SelectorSet, ...] | None:
    """The selector objects; ``None`` drops the pool (an empty list, as upstream)."""
    if isinstance(value, dict):  # upstream also takes a single object
        one = parse_selector(value, path, device_type, problems)
        return (one,) if one else ()
    if value is None:  # upstream dereferences a nil pointer and crashes
        problems.add(path, "required (null or missing crashes upstream's device plugin); "
                           "use {} to select every device")
        return ()
    if not isinstance(value, list):
        problems.add(path, f"expected a selector object or a list of them, got {json_type(value)}")
        return ()
    if not value:
        problems.doubt(path, "is an empty list, so the pool is dropped (as upstream; "
                             "use [{}] to select every device)")
        return None
    parsed = (parse_selector(item, f"{path}[{i}]", device_type, problems)
              for i, item in enumerate(value))
    return tuple(s for s in parsed if s is not None)


def _additional_info(value: object, path: str, problems: Problems) -> dict[str, dict[str, str]]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.add(path, f"expected an object keyed by '*' or a PCI address, got "
                           f"{json_type(value)}")
        return {}
    info: dict[str, dict[str, str]] = {}
    for key, entries in value.items():
        field = f"{path}.{key}"
        if key != "*":
            _checked(key, field, _pci, problems)  # upstream looks the key up verbatim
        if entries is None:
            continue
        if not isinstance(entries, dict):
            problems.add(field, f"expected an object of strings, got {json_type(entries)}")
            continue
        bad = [k for k, v in entries.items() if not isinstance(v, str)]
        for k in bad:
            problems.add(f"{field}.{k}", f"expected a string, got {json_type(entries[k])}")
        info[key] = {k: v for k, v in entries.items() if isinstance(v, str)}
    return info


def _name(fields: Mapping[str, Any], path: str, problems: Problems) -> str | None:
    name = fields.get("resourceName")
    field = f"{path}.resourceName"
    if name is None:
        problems.add(field, "required")
    elif not isinstance(name, str):
        problems.add(field, f"expected a string, got {json_type(name)}")
    elif not RESOURCE_NAME.match(name):
        problems.add(field, f"{name!r}: only letters, digits, '_' and '-'")
    elif len(name) > 63 or not (name[0].isalnum() and name[-1].isalnum()):
        problems.add(field, f"{name!r}: kubelet needs at most 63 characters "
                            "that start and end with a letter or digit")
    return name if isinstance(name, str) else None


def _pool(obj: object, index: int, problems: Problems) -> PoolEntry | None:
    path = f"resourceList[{index}]"
    if not isinstance(obj, dict):
        problems.add(path, f"expected a resource object, got {json_type(obj)}")
        return None
    fields = _fields(obj, path, POOL_KEYS, problems, ignored=GO_ONLY_POOL_KEYS)
    name = _name(fields, path, problems)
    prefix = fields.get("resourcePrefix")
    prefix = None if prefix == "" else prefix  # Go: "" means the default prefix
    if prefix is not None and (not isinstance(prefix, str) or len(prefix) > 253
                               or not RESOURCE_PREFIX.match(prefix)):
        problems.add(f"{path}.resourcePrefix",
                     f"{prefix!r}: expected a lower-case DNS domain, e.g. 'intel.com'")
    raw_type = fields.get("deviceType")
    raw_type = DeviceType.NET_DEVICE.value if raw_type in (None, "") else raw_type  # as Go
    if raw_type in tuple(DeviceType):
        device_type = DeviceType(raw_type)
    else:
        problems.add(f"{path}.deviceType",
                     f"expected one of {', '.join(DeviceType)}, got {raw_type!r}")
        device_type = DeviceType.NET_DEVICE
    exclude = fields.get("excludeTopology")
    if exclude is not None and not isinstance(exclude, bool):
        problems.add(f"{path}.excludeTopology", f"expected true or false, got {json_type(exclude)}")
    objs = fields.get("SelectorObjs")
    if objs is not None and not isinstance(objs, list):  # Go: []interface{}, then overwritten
        problems.add(f"{path}.SelectorObjs", f"expected a list or null (upstream rejects the "
                                             f"whole file otherwise), got {json_type(objs)}")
    selectors = _selectors(fields.get("selectors"), f"{path}.selectors", device_type, problems)
    info = _additional_info(fields.get("additionalInfo"), f"{path}.additionalInfo", problems)
    if name is None or selectors is None:
        return None
    return PoolEntry(index=index, name=name, prefix=prefix if isinstance(prefix, str) else None,
                     device_type=device_type, exclude_topology=exclude is True,
                     selectors=selectors, additional_info=info)


def parse_resource_list(obj: object, problems: Problems) -> tuple[PoolEntry, ...]:
    if not isinstance(obj, dict):
        problems.add("", f"the config must be a JSON object with 'resourceList', got "
                         f"{json_type(obj)}")
        return ()
    fields = _fields(obj, "", ("resourceList",), problems)
    if "resourceList" not in fields:
        problems.add("resourceList", "required")
        return ()
    items = fields["resourceList"]
    if items is None:
        return ()
    if not isinstance(items, list):
        problems.add("resourceList", f"expected a list, got {json_type(items)}")
        return ()
    parsed = (_pool(item, i, problems) for i, item in enumerate(items))
    return tuple(p for p in parsed if p is not None)
