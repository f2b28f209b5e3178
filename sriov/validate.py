"""Validating parsers for identifiers that arrive from users, configs and the CNI env.

Pure; every identifier type in :mod:`sriov.types` is constructed only here.
Anything that will end up in a path, a netlink request or an argv goes through
one of these first.
"""

from __future__ import annotations

import re

from sriov.errors import InvalidInputError
from sriov.types import IfName, MacAddress, PciAddress

_PCI_FULL = re.compile(r"^([0-9a-fA-F]{4}):([0-9a-fA-F]{2}):([0-1][0-9a-fA-F])\.([0-7])$")
_PCI_SHORT = re.compile(r"^([0-9a-fA-F]{2}):([0-1][0-9a-fA-F])\.([0-7])$")
_MAC = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")
IFNAMSIZ = 16


def pci_address(value: object) -> PciAddress:
    """Parse ``0000:3b:02.0`` (or the short ``3b:02.0``) into a canonical address."""
    if not isinstance(value, str):
        raise InvalidInputError("PCI address", value, "must be a string")
    m = _PCI_FULL.fullmatch(value)
    if m:
        return PciAddress(value.lower())
    m = _PCI_SHORT.fullmatch(value)
    if m:
        return PciAddress("0000:" + value.lower())
    raise InvalidInputError("PCI address", value, "expected dddd:bb:dd.f, e.g. 0000:3b:02.0")


def is_pci_address(value: object) -> bool:
    return isinstance(value, str) and bool(_PCI_FULL.fullmatch(value))


def ifname(value: object) -> IfName:
    """Validate a Linux interface name the way the kernel and CNI skel do."""
    if not isinstance(value, str):
        raise InvalidInputError("interface name", value, "must be a string")
    if not value:
        raise InvalidInputError("interface name", value, "is empty")
    try:
        encoded = value.encode("utf-8")
    except UnicodeEncodeError:  # undecodable env bytes arrive as lone surrogates
        raise InvalidInputError("interface name", value, "is not valid UTF-8") from None
    if len(encoded) >= IFNAMSIZ:
        raise InvalidInputError("interface name", value, "longer than 15 bytes")
    if value in (".", ".."):
        raise InvalidInputError("interface name", value, "is . or ..")
    if any(c in value for c in "/:") or any(c.isspace() for c in value):
        raise InvalidInputError("interface name", value, "contains '/', ':' or whitespace")
    if not value.isprintable():
        raise InvalidInputError("interface name", value, "contains non-printable characters")
    return IfName(value)


def mac_address(value: object) -> MacAddress:
    """Parse ``02:AA:..`` into lower-case form; rejects multicast and all-zero MACs."""
    if not isinstance(value, str) or not _MAC.fullmatch(value):
        raise InvalidInputError("MAC address", value, "expected six colon-separated hex bytes")
    mac = value.lower()
    if int(mac[:2], 16) & 1:
        raise InvalidInputError("MAC address", value, "is a multicast address")
    if mac == "00:00:00:00:00:00":
        raise InvalidInputError("MAC address", value, "is all zeros")
    return MacAddress(mac)


def admin_mac(value: object) -> MacAddress:
    """Like :func:`mac_address` but allows all-zero, which a VF admin MAC may be."""
    if value == "00:00:00:00:00:00":
        return MacAddress("00:00:00:00:00:00")
    return mac_address(value)
