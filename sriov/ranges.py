"""The ``<device>#<indexes>`` VF-index range syntax of ``pfNames`` / ``rootDevices``.

``"ens1f0#0-3,5,7-9"`` means VFs 0, 1, 2, 3, 5, 7, 8 and 9 (0-based, inclusive) of the
PF ``ens1f0``; a plain ``"ens1f0"`` means every VF of that PF. Upstream parses this
lazily at filter time and only prints malformed ranges; we parse at config time and
reject them. Pure: no I/O.
"""

from __future__ import annotations

import dataclasses
import re

from sriov.errors import InvalidInputError

MAX_VF_INDEX = 255
"""Highest VF index a range may name (PCIe SR-IOV NICs expose at most 256 VFs per PF)."""

_NUMBER = re.compile(r"^[0-9]+$")


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
