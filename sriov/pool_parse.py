"""Field-by-field validation of the resource-pool config (helper of :mod:`sriov.pools`).

Walks a decoded JSON document and records every problem with its JSON path
(``resourceList[1].selectors[0].pfNames[2]``) instead of stopping at the first one.
Pure: no I/O.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Callable
from typing import Any

from sriov import validate
from sriov.errors import InvalidInputError, PoolConfigError
from sriov.ranges import DeviceRef, parse_vf_indexes, split_device_ref
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
             "additionalInfo")
_PCI_KEYS = ("vendors", "devices", "drivers")
SELECTOR_KEYS: dict[DeviceType, tuple[str, ...]] = {
    DeviceType.NET_DEVICE: (*_PCI_KEYS, "pciAddresses", "acpiIndexes", "pfNames", "rootDevices",
                            "linkTypes", "ddpProfiles", "pKeys", "isRdma", "needVhostNet",
                            "vdpaType"),
    DeviceType.AUX_NET_DEVICE: (*_PCI_KEYS, "acpiIndexes", "pfNames", "rootDevices", "linkTypes",
                                "isRdma", "needVhostNet", "auxTypes"),
    DeviceType.ACCELERATOR: (*_PCI_KEYS, "pciAddresses", "acpiIndexes"),
}
_ALL_SELECTOR_KEYS = tuple(dict.fromkeys(k for keys in SELECTOR_KEYS.values() for k in keys))


class Problems:
    """Collects errors (with their field path) and warnings while walking a config."""

    def __init__(self) -> None:
        self.errors: list[PoolConfigError] = []
        self.warnings: list[str] = []

    def add(self, field: str, reason: str) -> None:
        self.errors.append(PoolConfigError(field, reason))


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


def _known_keys(obj: dict[str, Any], path: str, known: tuple[str, ...], problems: Problems,
                *, elsewhere: tuple[str, ...] = (), context: str = "") -> dict[str, Any]:
    """Map keys to their canonical spelling; report unknown ones with the closest known key."""
    folded = {k.lower(): k for k in known}
    result: dict[str, Any] = {}
    for key, value in obj.items():
        canonical = key if key in known else folded.get(key.lower())
        shown = key if key.isprintable() and key.strip() and "." not in key else repr(key)
        field = f"{path}.{shown}" if path else shown  # an empty or odd key is still named
        if canonical is None:
            if key in elsewhere:
                problems.add(field, f"not a selector for {context}; allowed: {', '.join(known)}")
                continue
            close = difflib.get_close_matches(key.lower(), list(folded), n=1, cutoff=0.6)
            hint = (f"; did you mean {folded[close[0]]!r}?" if close
                    else f"; known keys: {', '.join(known)}")
            problems.add(field, f"unknown key{hint}")
            continue
        if canonical in result:
            problems.add(field, f"given twice (also as {canonical!r})")
            continue
        if canonical != key:
            problems.warnings.append(f"{field}: accepted as {canonical!r} (keys are "
                                     "case-insensitive upstream; please fix the spelling)")
        result[canonical] = value
    return result


def _hex_id(value: str) -> str:
    m = _HEX_ID.fullmatch(value)
    if not m:
        raise ValueError("expected 4 hex digits, e.g. '8086' or '0x8086'")
    return m.group(2).lower()


def _driver(value: str) -> str:
    if not _DRIVER.fullmatch(value):
        raise ValueError("not a driver name (letters, digits, '_', '-', '.')")
    return value


def _pci(value: str) -> str:
    return validate.pci_address(value)


def _acpi_index(value: str) -> str:
    if not _DECIMAL.fullmatch(value):
        raise ValueError("expected a decimal ACPI index, e.g. '101'")
    return value


def _ref(device_parser: Callable[[str], str]) -> Callable[[str], DeviceRef]:
    def parse(value: str) -> DeviceRef:
        device, range_text = split_device_ref(value)
        device = device_parser(device)
        if range_text is None:
            return DeviceRef(device=device)
        return DeviceRef(device=device, vf_indexes=parse_vf_indexes(range_text),
                         range_text=range_text)
    return parse


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
    m = _PKEY.fullmatch(value)
    if not m:
        raise ValueError("expected a 16-bit hex partition key, e.g. '0x7fff'")
    return "0x" + m.group(2).lower()


_LIST_KEYS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "vendors": ("vendors", _hex_id),
    "devices": ("devices", _hex_id),
    "drivers": ("drivers", _driver),
    "pciAddresses": ("pci_addresses", _pci),
    "acpiIndexes": ("acpi_indexes", _acpi_index),
    "pfNames": ("pf_names", _ref(validate.ifname)),
    "rootDevices": ("root_devices", _ref(validate.pci_address)),
    "linkTypes": ("link_types", _choice(LINK_TYPES)),
    "ddpProfiles": ("ddp_profiles", _nonempty),
    "pKeys": ("p_keys", _pkey),
    "auxTypes": ("aux_types", _choice(AUX_TYPES)),
}
_BOOL_KEYS = {"isRdma": "is_rdma", "needVhostNet": "need_vhost_net"}


def _string_list(value: object, field: str, parse: Callable[[str], Any],
                 problems: Problems) -> tuple[Any, ...]:
    if not isinstance(value, list):
        problems.add(field, f"expected a list of strings, got {json_type(value)}")
        return ()
    items: list[Any] = []
    for i, item in enumerate(value):
        if not isinstance(item, str):
            problems.add(f"{field}[{i}]", f"expected a string, got {json_type(item)}")
            continue
        try:
            parsed = parse(item)
        except InvalidInputError as e:
            problems.add(f"{field}[{i}]", f"{item!r}: {e.what}: {e.reason}")
            continue
        except ValueError as e:
            problems.add(f"{field}[{i}]", f"{item!r}: {e}")
            continue
        if parsed not in items:
            items.append(parsed)
    return tuple(items)


def parse_selector(obj: object, path: str, device_type: DeviceType,
                   problems: Problems) -> SelectorSet | None:
    if not isinstance(obj, dict):
        problems.add(path, f"expected a selector object, got {json_type(obj)}")
        return None
    fields = _known_keys(obj, path, SELECTOR_KEYS[device_type], problems,
                         elsewhere=_ALL_SELECTOR_KEYS, context=f"deviceType {device_type}")
    values: dict[str, Any] = {}
    for key, value in fields.items():
        field = f"{path}.{key}"
        if key in _LIST_KEYS:
            attribute, parse = _LIST_KEYS[key]
            values[attribute] = _string_list(value, field, parse, problems)
        elif key in _BOOL_KEYS:
            if isinstance(value, bool):
                values[_BOOL_KEYS[key]] = value
            else:
                problems.add(field, f"expected true or false, got {json_type(value)}")
        elif key == "vdpaType":
            if value in tuple(VdpaType):
                values["vdpa_type"] = VdpaType(value)
            else:
                problems.add(field, f"expected one of {', '.join(VdpaType)}, got {value!r}")
    if values.get("is_rdma") and values.get("vdpa_type"):
        problems.add(f"{path}.vdpaType", "cannot be combined with isRdma: true")
    return SelectorSet(**values)


def _selectors(value: object, path: str, device_type: DeviceType,
               problems: Problems) -> tuple[SelectorSet, ...]:
    if isinstance(value, dict):  # upstream also takes a single object
        one = parse_selector(value, path, device_type, problems)
        return (one,) if one else ()
    if not isinstance(value, list):
        problems.add(path, f"expected a selector object or a list of them, got {json_type(value)}")
        return ()
    if not value:
        problems.add(path, "is an empty list, so the pool could never select a device "
                           "(use [{}] to select every VF)")
    parsed = (parse_selector(item, f"{path}[{i}]", device_type, problems)
              for i, item in enumerate(value))
    return tuple(s for s in parsed if s is not None)


def _additional_info(value: object, path: str, problems: Problems) -> dict[str, dict[str, str]]:
    if not isinstance(value, dict):
        problems.add(path, f"expected an object keyed by '*' or a PCI address, got "
                           f"{json_type(value)}")
        return {}
    info: dict[str, dict[str, str]] = {}
    for key, entries in value.items():
        field = f"{path}.{key}"
        try:
            device = key if key == "*" else validate.pci_address(key)
        except InvalidInputError as e:
            problems.add(field, f"key must be '*' or a PCI address: {e.reason}")
            continue
        if not isinstance(entries, dict):
            problems.add(field, f"expected an object of strings, got {json_type(entries)}")
            continue
        bad = [k for k, v in entries.items() if not isinstance(v, str)]
        for k in bad:
            problems.add(f"{field}.{k}", f"expected a string, got {json_type(entries[k])}")
        info[device] = {k: v for k, v in entries.items() if isinstance(v, str)}
    return info


def _pool(obj: object, index: int, problems: Problems) -> PoolEntry | None:
    path = f"resourceList[{index}]"
    if not isinstance(obj, dict):
        problems.add(path, f"expected a resource object, got {json_type(obj)}")
        return None
    fields = _known_keys(obj, path, POOL_KEYS, problems)
    name = fields.get("resourceName")
    if "resourceName" not in fields:
        problems.add(f"{path}.resourceName", "required")
    elif not isinstance(name, str):
        problems.add(f"{path}.resourceName", f"expected a string, got {json_type(name)}")
    elif not RESOURCE_NAME.fullmatch(name):
        problems.add(f"{path}.resourceName", f"{name!r}: only letters, digits, '_' and '-'")
    elif len(name) > 63 or not (name[0].isalnum() and name[-1].isalnum()):
        problems.add(f"{path}.resourceName", f"{name!r}: kubelet needs at most 63 characters "
                                             "that start and end with a letter or digit")
    prefix = fields.get("resourcePrefix")
    if prefix is not None and (not isinstance(prefix, str) or len(prefix) > 253
                               or not RESOURCE_PREFIX.fullmatch(prefix)):
        problems.add(f"{path}.resourcePrefix",
                     f"{prefix!r}: expected a lower-case DNS domain, e.g. 'intel.com'")
    raw_type = fields.get("deviceType", DeviceType.NET_DEVICE.value)
    if raw_type in tuple(DeviceType):
        device_type = DeviceType(raw_type)
    else:
        problems.add(f"{path}.deviceType",
                     f"expected one of {', '.join(DeviceType)}, got {raw_type!r}")
        device_type = DeviceType.NET_DEVICE
    exclude = fields.get("excludeTopology", False)
    if not isinstance(exclude, bool):
        problems.add(f"{path}.excludeTopology", f"expected true or false, got {json_type(exclude)}")
    if "selectors" in fields:
        selectors = _selectors(fields["selectors"], f"{path}.selectors", device_type, problems)
    else:
        problems.add(f"{path}.selectors", "required (use [{}] to select every VF)")
        selectors = ()
    info = _additional_info(fields.get("additionalInfo", {}), f"{path}.additionalInfo", problems)
    if not isinstance(name, str):
        return None
    return PoolEntry(index=index, name=name, prefix=prefix if isinstance(prefix, str) else None,
                     device_type=device_type, exclude_topology=exclude is True,
                     selectors=selectors, additional_info=info)


def parse_resource_list(obj: object, problems: Problems) -> tuple[PoolEntry, ...]:
    if not isinstance(obj, dict):
        problems.add("", f"the config must be a JSON object with 'resourceList', got "
                         f"{json_type(obj)}")
        return ()
    fields = _known_keys(obj, "", ("resourceList",), problems)
    if "resourceList" not in fields:
        problems.add("resourceList", "required")
        return ()
    items = fields["resourceList"]
    if not isinstance(items, list):
        problems.add("resourceList", f"expected a list, got {json_type(items)}")
        return ()
    parsed = (_pool(item, i, problems) for i, item in enumerate(items))
    return tuple(p for p in parsed if p is not None)
