"""JSON objects decoded the way Go's ``encoding/json`` (v1) decodes them into a struct.

The Go projects whose configs we accept (sriov-network-device-plugin, sriov-cni) unmarshal
into structs, so for a config to mean the same here:

- a key matches a field by its exact name first, else case-insensitively
  (``IsRdma``, ``resourceprefix``, ``DeviceID``, ``Vlan``);
- a key given twice (exactly, or as two spellings of one field) is not an error: the one
  that comes last in the document wins;
- keys that match no field are ignored (we report them; the caller decides how loudly).

:func:`loads` keeps, per object, which keys were repeated (the Python ``dict`` would
silently keep the last value but the *first* position), and :func:`match_fields` maps an
object onto a set of field names with these rules. Pure, standard library only.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
from collections.abc import Iterable, Mapping
from typing import Any


class GoObject(dict[str, Any]):
    """A decoded JSON object; ``repeated`` lists keys that appeared more than once."""

    repeated: tuple[str, ...] = ()


def _pairs(pairs: list[tuple[str, Any]]) -> GoObject:
    obj = GoObject()
    repeated: list[str] = []
    for key, value in pairs:
        if key in obj:
            repeated.append(key)
            del obj[key]  # re-insert: iteration order must follow the *last* occurrence
        obj[key] = value
    if repeated:
        obj.repeated = tuple(dict.fromkeys(repeated))
    return obj


def loads(text: str | bytes) -> Any:
    """``json.loads`` whose objects are :class:`GoObject` (duplicates: last wins)."""
    return json.loads(text, object_pairs_hook=_pairs)


def fold(key: str) -> str:
    """Go's case folding for field names (``casefold`` also maps the Kelvin sign and long s)."""
    return key.casefold()


@dataclasses.dataclass(frozen=True, slots=True)
class Matched:
    """The result of mapping one JSON object onto a struct's field names."""

    fields: dict[str, Any]
    """Canonical field name -> value (the last spelling in the document wins)."""
    spelled: dict[str, str]
    """Canonical field name -> the key as written (for messages)."""
    unknown: tuple[str, ...]
    """Keys matching no field, in document order."""
    case_variants: tuple[tuple[str, str], ...]
    """``(written, canonical)`` for keys accepted only case-insensitively."""
    repeated: tuple[str, ...]
    """Canonical names set more than once (by one key repeated or by two spellings)."""


def match_fields(obj: Mapping[str, Any], known: Iterable[str]) -> Matched:
    names = tuple(known)
    exact = set(names)
    folded: dict[str, str] = {}
    for name in names:
        folded.setdefault(fold(name), name)
    fields: dict[str, Any] = {}
    spelled: dict[str, str] = {}
    unknown: list[str] = []
    variants: list[tuple[str, str]] = []
    repeated: list[str] = []
    for key in getattr(obj, "repeated", ()):
        canonical = key if key in exact else folded.get(fold(key))
        if canonical is not None:
            repeated.append(canonical)
    for key, value in obj.items():
        canonical = key if key in exact else folded.get(fold(key))
        if canonical is None:
            unknown.append(key)
            continue
        if canonical in fields:
            repeated.append(canonical)
            del fields[canonical]
        if canonical != key:
            variants.append((key, canonical))
        fields[canonical] = value
        spelled[canonical] = key
    return Matched(fields=fields, spelled=spelled, unknown=tuple(unknown),
                   case_variants=tuple(variants), repeated=tuple(dict.fromkeys(repeated)))


def did_you_mean(key: str, known: Iterable[str]) -> str | None:
    """The closest known name (difflib), or None."""
    by_fold = {fold(k): k for k in known}
    close = difflib.get_close_matches(fold(key), list(by_fold), n=1, cutoff=0.6)
    return by_fold[close[0]] if close else None
