"""The ``<device>#<indexes>`` VF-index range syntax of ``pfNames`` / ``rootDevices``.

``"ens1f0#0-3,5,7-9"`` means VFs 0, 1, 2, 3, 5, 7, 8 and 9 (0-based, inclusive) of the
PF ``ens1f0``; a plain ``"ens1f0"`` means every VF of that PF. Upstream parses this
lazily at filter time and only prints malformed ranges: :func:`upstream_vf_indexes`
gives exactly the VFs upstream selects (plus what was wrong, for a warning), and
:func:`parse_vf_indexes` is the strict parser (``--strict-config``). Pure: no I/O.
"""

from __future__ import annotations

import dataclasses
import re

from sriov.errors import InvalidInputError

MAX_VF_INDEX = 255
"""Highest VF index a range may name (PCIe SR-IOV NICs expose at most 256 VFs per PF)."""

_NUMBER = re.compile(r"^[0-9]+$")
_GO_ATOI = re.compile(r"[+-]?[0-9]+")
HIGHEST_VF = 0xFFFF
"""No PCIe function has more VFs (``TotalVFs`` is 16 bits): larger upstream ranges are cut."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class DeviceRef:
    """A PF (netdev name or PCI address) plus, optionally, which of its VFs."""

    device: str
    vf_indexes: frozenset[int] | None = None
    """``None`` = every VF of the PF."""
    range_text: str = ""
    """The text after ``#`` exactly as written (for messages)."""

    def covers(self, index: int) -> bool:
        return self.vf_indexes is None or index in self.vf_indexes

    def __str__(self) -> str:
        return f"{self.device}#{self.range_text}" if self.vf_indexes is not None else self.device


def _index(text: str, whole: str) -> int:
    if not _NUMBER.fullmatch(text):
        raise InvalidInputError("VF index range", whole, f"{text!r} is not a VF index")
    value = int(text)
    if value > MAX_VF_INDEX:
        raise InvalidInputError("VF index range", whole, f"VF index {value} > {MAX_VF_INDEX}")
    return value


def parse_vf_indexes(text: str) -> frozenset[int]:
    """Parse ``"0-3,5,7-9"`` into the set of VF indexes it names.

    Raises :class:`InvalidInputError` for empty parts, non-numbers, reversed or
    half-open ranges (``3-1``, ``1-``, ``1--2``) and indexes above :data:`MAX_VF_INDEX`.
    """
    if not text:
        raise InvalidInputError("VF index range", text, "nothing after '#'")
    indexes: set[int] = set()
    for part in text.split(","):
        if not part:
            raise InvalidInputError("VF index range", text, "empty part between commas")
        first, sep, last = part.partition("-")
        if "-" in last:
            raise InvalidInputError("VF index range", text, f"{part!r} is not N or N-M")
        if not sep:
            indexes.add(_index(first, text))
            continue
        if not first or not last:
            raise InvalidInputError("VF index range", text, f"{part!r} needs a start and an end")
        low, high = _index(first, text), _index(last, text)
        if low > high:
            raise InvalidInputError("VF index range", text, f"{part!r} runs backwards")
        indexes.update(range(low, high + 1))
    return frozenset(indexes)


def split_device_ref(value: str) -> tuple[str, str | None]:
    """``"ens1f0#0-3"`` -> ``("ens1f0", "0-3")``; ``"ens1f0"`` -> ``("ens1f0", None)``."""
    device, sep, rest = value.partition("#")
    if not sep:
        return device, None
    if "#" in rest:
        raise InvalidInputError("VF index range", value, "more than one '#'")
    return device, rest


def upstream_vf_indexes(text: str) -> tuple[frozenset[int], str | None]:
    """The VF indexes upstream's ``isSelected`` selects for the text after ``#``, and why
    it is not well-formed (``None`` when it is).

    Upstream walks the comma-separated items in order and answers "selected" at the first
    item that covers the index, or "not selected" at the first malformed item (``x``,
    ``1-``, ``1-2-3``, ``""``); so a VF counts only if an item *before* the first malformed
    one covers it. A reversed range (``5-3``) is well-formed upstream and covers nothing.
    """
    indexes: set[int] = set()
    problem: str | None = None
    for part in text.split(","):
        if "-" in part:
            bounds = part.split("-")
            if len(bounds) != 2 or not all(_GO_ATOI.fullmatch(b) for b in bounds):
                return frozenset(indexes), f"{part!r} is not N or N-M; upstream stops here"
            low, high = (int(b) for b in bounds)
            if low > high:
                problem = problem or f"{part!r} runs backwards and selects nothing"
            indexes.update(range(max(low, 0), min(high, HIGHEST_VF) + 1))
        elif _GO_ATOI.fullmatch(part):
            indexes.add(int(part))
        else:
            return frozenset(indexes), f"{part!r} is not a VF index; upstream stops here"
    return frozenset(indexes), problem
