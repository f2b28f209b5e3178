"""Error hierarchy of the core layer.

Every failure the core reports is a :class:`SriovError`. Callers in ``cni/`` and
``deviceplugin/`` map these to their own protocol errors in exactly one place
(``cni.errors`` / the gRPC adapter). Third-party exceptions (pyroute2's
``NetlinkError``, ``OSError`` from sysfs) are wrapped with ``raise ... from e``
so the original errno survives as ``__cause__`` and in the ``errno`` attribute.

This module imports nothing outside the standard library.
"""

from __future__ import annotations

import errno as _errno
import os


class SriovError(Exception):
    """Base class for every error raised by the ``sriov`` package."""


class InvalidInputError(SriovError, ValueError):
    """A user-supplied value (PCI address, interface name, MAC, range) is malformed."""

    def __init__(self, what: str, value: object, reason: str) -> None:
        self.what = what
        self.value = value
        self.reason = reason
        super().__init__(f"invalid {what} {shown_value(value)}: {reason}")


def shown_value(value: object, limit: int = 80) -> str:
    """``repr(value)``, cut to ``limit`` characters: an error (and its log line) must not echo
    megabytes of hostile input."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


class SysfsError(SriovError):
    """A sysfs attribute is missing, unreadable or holds garbage."""

    def __init__(self, path: os.PathLike[str] | str, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class DeviceNotFoundError(SriovError):
    """A PCI device, VF, PF or netdev that was asked for does not exist on this host."""

    def __init__(self, what: str, ident: str, hint: str = "") -> None:
        self.what = what
        self.ident = ident
        msg = f"{what} {ident!r} not found"
        super().__init__(f"{msg}: {hint}" if hint else msg)


class PoolConfigError(SriovError):
    """The resource-pool config (sriov-network-device-plugin format) is invalid.

    ``field`` is a JSON path such as ``resourceList[1].selectors[0].pfNames[0]``.
    """

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}" if field else reason)


class NetlinkOpError(SriovError):
    """A netlink request failed; ``errno`` is the kernel's answer."""

    def __init__(self, op: str, target: str, errno: int, detail: str = "") -> None:
        self.op = op
        self.target = target
        self.errno = errno
        name = _ERRNO_NAMES.get(errno) or _errno.errorcode.get(errno, str(errno))
        text = detail or os.strerror(errno)
        super().__init__(f"{op} {target}: {name} ({text})")


class VfSettingError(NetlinkOpError):
    """The kernel/driver refused one VF setting.

    ``setting`` names it (e.g. ``link_state``); ``applied`` lists the settings of
    the same request that were already applied before this one failed, so the
    caller knows exactly what to roll back.
    """

    def __init__(
        self,
        setting: str,
        target: str,
        errno: int,
        applied: tuple[str, ...] = (),
        detail: str = "",
    ) -> None:
        self.setting = setting
        self.applied = applied
        reason = detail or _REFUSAL_REASONS.get(errno, "")
        super().__init__(f"set VF {setting}", target, errno, reason)


# Linux aliases ENOTSUP to EOPNOTSUPP (95); iproute2 and driver docs say EOPNOTSUPP.
_ERRNO_NAMES = {_errno.EOPNOTSUPP: "EOPNOTSUPP"}

_REFUSAL_REASONS = {
    _errno.EOPNOTSUPP: "not supported by this driver",
    _errno.EPROTONOSUPPORT: "protocol not supported by this driver",
    _errno.EINVAL: "value rejected by the driver",
}


class VfBusyError(SriovError):
    """A VF is locked or owned by another attachment."""

    def __init__(self, pci: str, reason: str, what: str = "VF") -> None:
        self.pci = pci
        super().__init__(f"{what} {pci} is busy: {reason}")


class EmulationError(SriovError):
    """The emulated SR-IOV host could not be built, changed or torn down."""
