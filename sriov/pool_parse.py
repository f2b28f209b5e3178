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
from collections.abc import Mapping
from typing import Any

from sriov import gojson
from sriov.pool_values import (
    AUX_TYPES,
    LIST_KEYS,
    Problems,
    checked,
    json_type,
    pci,
    string_list,
)
from sriov.selectors import DeviceType, SelectorSet, VdpaType

__all__ = ["PoolEntry", "Problems", "json_type", "parse_resource_list", "parse_selector"]

RESOURCE_NAME = re.compile(r"^[a-zA-Z0-9_-]+$")
RESOURCE_PREFIX = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
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
_BOOL_KEYS = {"isRdma": "is_rdma", "needVhostNet": "need_vhost_net"}
_ALL_SELECTOR_KEYS = tuple(dict.fromkeys(k for keys in SELECTOR_KEYS.values() for k in keys))
GO_FIELD_SPELLINGS = frozenset({"IsRdma", "NeedVhostNet"})
"""Upstream's own (untagged Go field) spellings, written by the operator: no warning."""


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


def _vdpa_type(value: object, field: str, problems: Problems) -> VdpaType | str | None:
    """``vdpaType`` as upstream: ``""`` is unset; a string it does not know is kept (it
    selects nothing, and still conflicts with ``isRdma``) with a warning."""
    if value is None or value == "":  # Go: empty means unset
        return None
    if not isinstance(value, str):
        problems.add(field, f"expected a string, got {json_type(value)}")
        return None
    if value in tuple(VdpaType):
        return VdpaType(value)
    problems.doubt(field, f"{value!r} is not a vDPA type ({', '.join(VdpaType)}), so this "
                          "selector selects nothing (as upstream)")
    return value


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
        if key in LIST_KEYS:
            values[LIST_KEYS[key][0]] = string_list(value, key, field, problems)
        elif key in _BOOL_KEYS:
            if isinstance(value, bool):
                values[_BOOL_KEYS[key]] = value
            elif value is not None:
                problems.add(field, f"expected true or false, got {json_type(value)}")
        elif key == "vdpaType":
            values["vdpa_type"] = _vdpa_type(value, field, problems)
    if values.get("is_rdma") and values.get("vdpa_type"):
        problems.add(f"{path}.vdpaType", "cannot be combined with isRdma: true")
    if device_type is DeviceType.AUX_NET_DEVICE:  # upstream's ValidConfig: fatal otherwise
        aux_types = values.get("aux_types", ())
        if not aux_types:
            problems.add(f"{path}.auxTypes", "required for deviceType auxNetDevice (e.g. [\"sf\"])")
        for i, aux_type in enumerate(aux_types):
            if aux_type not in AUX_TYPES:
                problems.add(f"{path}.auxTypes[{i}]", f"{aux_type!r}: only 'sf' is supported")
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
            checked(key, field, pci, problems)  # upstream looks the key up verbatim
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
    elif not RESOURCE_NAME.fullmatch(name):
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
                               or not RESOURCE_PREFIX.fullmatch(prefix)):
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
