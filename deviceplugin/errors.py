"""The device-plugin layer's one error type.

Core failures arrive as :class:`sriov.errors.SriovError` and are mapped to gRPC
status codes in exactly one place (:mod:`deviceplugin.servicer`); everything the
device-plugin layer itself refuses is a :class:`DevicePluginError`.
"""

from __future__ import annotations


class DevicePluginError(Exception):
    """A device-plugin request or lifecycle step was refused.

    ``field`` names what was wrong (a device ID, a flag, a socket path).
    """

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}" if field else reason)
