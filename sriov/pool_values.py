"""Selector values of the resource-pool config and the problems found in them (helper of
:mod:`sriov.pool_parse`).

Each checker returns the value as upstream compares it, or raises ``ValueError`` /
:class:`~sriov.errors.InvalidInputError` for a value upstream accepts but that can never
match (``154C``, ``3b:02.0``) or looks like a typo; :func:`checked` turns that into a
warning (an error in strict mode) and keeps the value as written, so it means exactly
what it means upstream. ``pfNames``/``rootDevices`` entries become
:class:`~sriov.ranges.DeviceRef` with the VFs upstream's range walk selects. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from sriov import validate
from sriov.errors import InvalidInputError, PoolConfigError
from sriov.ranges import DeviceRef, parse_vf_indexes, upstream_vf_indexes

_HEX_ID = re.compile(r"^(0[xX])?([0-9a-fA-F]{4})$")
_PKEY = re.compile(r"^(0[xX])?([0-9a-fA-F]{1,4})$")
_DRIVER = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_DECIMAL = re.compile(r"^[0-9]+$")
LINK_TYPES = ("ether", "infiniband")
AUX_TYPES = ("sf",)


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


def json_type(value: object) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string",
            list: "a list", dict: "an object"}.get(type(value), type(value).__name__)


def _hex_id(value: str) -> str:
    if not _HEX_ID.fullmatch(value):
        raise ValueError("expected 4 hex digits, e.g. '8086' or '0x8086'")
    canonical = _HEX_ID.fullmatch(value).group(2).lower()  # type: ignore[union-attr]
    if canonical != value:
        raise ValueError(f"upstream compares exactly with sysfs's lower-case ID, so this "
                         f"never matches; did you mean {canonical!r}?")
    return value


def _driver(value: str) -> str:
    if not _DRIVER.fullmatch(value):
        raise ValueError("not a driver name (letters, digits, '_', '-', '.')")
    return value


def pci(value: str) -> str:
    canonical = validate.pci_address(value)
    if canonical != value:
        raise ValueError(f"upstream compares exactly, so this never matches; did you mean "
                         f"{canonical!r}?")
    return canonical


def _acpi_index(value: str) -> str:
    if not _DECIMAL.fullmatch(value):
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
    m = _PKEY.fullmatch(value)
    if not m:
        raise ValueError("expected a 16-bit hex partition key, e.g. '0x7fff'")
    return "0x" + m.group(2).lower()


LIST_KEYS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "vendors": ("vendors", _hex_id),
    "devices": ("devices", _hex_id),
    "drivers": ("drivers", _driver),
    "pciAddresses": ("pci_addresses", pci),
    "acpiIndexes": ("acpi_indexes", _acpi_index),
    "pfNames": ("pf_names", _pf_name),
    "rootDevices": ("root_devices", _root_device),
    "linkTypes": ("link_types", _choice(LINK_TYPES)),
    "ddpProfiles": ("ddp_profiles", _nonempty),
    "pKeys": ("p_keys", _pkey),
    "auxTypes": ("aux_types", str),  # upstream refuses other values: checked by pool_parse
}
REF_KEYS = ("pfNames", "rootDevices")


def _device_ref(value: str, field: str, check: Callable[[str], str],
                problems: Problems) -> DeviceRef:
    """``<pf>[#<items>]``: what upstream selects, with a warning for what looks wrong."""
    device, sep, range_text = value.partition("#")
    checked(device, field, check, problems, shown=value)
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


def checked(item: str, field: str, parse: Callable[[str], Any], problems: Problems, *,
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


def string_list(value: object, key: str, field: str, problems: Problems) -> tuple[Any, ...]:
    if value is None:  # Go: a null slice, i.e. no filter
        return ()
    if not isinstance(value, list):
        problems.add(field, f"expected a list of strings, got {json_type(value)}")
        return ()
    parse = LIST_KEYS[key][1]
    items: list[Any] = []
    for i, item in enumerate(value):
        if item is None:  # Go decodes null into "" without complaint
            item = ""
        if not isinstance(item, str):
            problems.add(f"{field}[{i}]", f"expected a string, got {json_type(item)}")
            continue
        if key in REF_KEYS:
            parsed: Any = _device_ref(item, f"{field}[{i}]", parse, problems)
        else:
            parsed = checked(item, f"{field}[{i}]", parse, problems)
        if parsed not in items:
            items.append(parsed)
    return tuple(items)
