"""CNI error codes and the one mapping from core (``sriov.errors``) errors to them.

Only :mod:`cni.skel` turns a :class:`CniError` into the error JSON on stdout; every other
module raises. Imports only the standard library and :mod:`sriov.errors`.
"""

from __future__ import annotations

import enum
import logging

from sriov import errors as core

log = logging.getLogger(__name__)


class CniCode(enum.IntEnum):
    """Spec error codes (0-99) plus plugin-specific ones (100+)."""

    INCOMPATIBLE_VERSION = 1
    UNSUPPORTED_FIELD = 2
    UNKNOWN_CONTAINER = 3
    INVALID_ENV = 4
    IO_FAILURE = 5
    DECODING_FAILURE = 6
    INVALID_CONFIG = 7
    INVALID_NETNS = 8
    TRY_AGAIN_LATER = 11
    NOT_AVAILABLE = 50
    LIMITED_CONNECTIVITY = 51
    # ours
    DEVICE_NOT_FOUND = 100
    VF_BUSY = 101
    NETLINK = 102
    VF_SETTING = 103
    IPAM = 104
    STATE = 105
    EMULATION = 106
    ATTACHMENT_EXISTS = 107
    ATTACHMENT_CHANGED = 108
    """CHECK: the attachment drifted from what ADD set up (MAC, MTU, state, addresses)."""
    UNTRUSTED_AGENT = 109
    """Shim: the agent socket is served by, or lives in a directory writable by, another uid."""
    INTERNAL = 999


class CniError(Exception):
    """A failure reported to the runtime as ``{cniVersion, code, msg, details}``."""

    def __init__(self, code: CniCode | int, msg: str, details: str = "") -> None:
        self.code = int(code)
        self.msg = msg
        self.details = details
        super().__init__(f"[{self.code}] {msg}" + (f": {details}" if details else ""))

    def to_dict(self, cni_version: str) -> dict[str, object]:
        out: dict[str, object] = {"cniVersion": cni_version, "code": self.code, "msg": self.msg}
        if self.details:
            out["details"] = self.details
        return out


def config_error(key: str, value: object, reason: str) -> CniError:
    """Code 7 naming the offending netconf key and its value."""
    return CniError(CniCode.INVALID_CONFIG, f"invalid {key} {core.shown_value(value)}: {reason}")


def env_error(var: str, reason: str) -> CniError:
    """Code 4 naming the offending environment variable."""
    return CniError(CniCode.INVALID_ENV, f"{var}: {reason}")


def from_exception(exc: BaseException, *, input_code: CniCode = CniCode.INVALID_CONFIG) -> CniError:
    """THE mapping of any exception to a :class:`CniError`.

    ``input_code`` is used for :class:`sriov.errors.InvalidInputError` (7 when the bad value came
    from the netconf, 4 when it came from the environment). Unexpected exceptions become 999 with
    a short ``details`` (type + message); the traceback goes only to the log.
    """
    if isinstance(exc, CniError):
        return exc
    if isinstance(exc, core.InvalidInputError):
        return CniError(input_code, str(exc))
    if isinstance(exc, core.VfBusyError):
        # transient: the VF lock/owner frees up once the other attachment finishes
        return CniError(CniCode.TRY_AGAIN_LATER, str(exc), "VF busy; try again later")
    if isinstance(exc, core.VfSettingError):
        return CniError(CniCode.VF_SETTING, f"VF setting {exc.setting} refused", str(exc))
    if isinstance(exc, core.NetlinkOpError):
        return CniError(CniCode.NETLINK, "netlink request failed", str(exc))
    if isinstance(exc, core.DeviceNotFoundError):
        return CniError(CniCode.DEVICE_NOT_FOUND, str(exc))
    if isinstance(exc, core.SysfsError):
        return CniError(CniCode.DEVICE_NOT_FOUND, "cannot read device from sysfs", str(exc))
    if isinstance(exc, core.PoolConfigError):
        return CniError(CniCode.INVALID_CONFIG, str(exc))
    if isinstance(exc, core.EmulationError):
        return CniError(CniCode.EMULATION, "emulated SR-IOV host error", str(exc))
    if isinstance(exc, core.SriovError):
        return CniError(CniCode.INTERNAL, "internal error", f"{type(exc).__name__}: {exc}")
    log.error("unexpected error", exc_info=exc)
    return CniError(CniCode.INTERNAL, "internal error", f"{type(exc).__name__}: {exc}"[:500])
