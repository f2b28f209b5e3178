"""PF-side VF administration: apply requested settings one at a time, read them back.

:class:`VfAdmin` is the protocol the CNI and the emulated host share;
:class:`NetlinkVfAdmin` implements it over :class:`sriov.netlink.Netlink`.
Settings go out in sriov-cni's order, one netlink request each, so a driver
refusal names exactly one setting and ``VfSettingError.applied`` lists what
already changed (the caller rolls those back with :meth:`NetlinkVfAdmin.restore`).
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Protocol

from sriov.errors import DeviceNotFoundError, NetlinkOpError, VfSettingError
from sriov.types import IfName, VfSetting, VfSettings, VfState, VlanProto

log = logging.getLogger(__name__)

APPLY_ORDER: tuple[VfSetting, ...] = (
    VfSetting.VLAN,
    VfSetting.MAC,
    VfSetting.TX_RATE,
    VfSetting.SPOOFCHK,
    VfSetting.TRUST,
    VfSetting.LINK_STATE,
)
"""sriov-cni's order: vlan, mac, tx rate, spoofchk, trust, link state."""


class VfAdmin(Protocol):
    def read(self, pf: IfName, index: int) -> VfState: ...

    def apply(self, pf: IfName, index: int, settings: VfSettings) -> tuple[VfSetting, ...]: ...


class VfSetter(Protocol):
    """The two :class:`sriov.netlink.Netlink` methods this module needs."""

    def vf_states(self, pf: str, netns: str | None = None) -> tuple[VfState, ...]: ...

    def set_vf(self, pf: str, index: int, setting: VfSetting, settings: VfSettings,
               netns: str | None = None) -> None: ...


def requested(settings: VfSettings) -> tuple[VfSetting, ...]:
    """The settings ``settings`` asks for, in apply order (``None`` fields are skipped)."""
    present = {
        VfSetting.VLAN: settings.vlan is not None,
        VfSetting.MAC: settings.mac is not None,
        VfSetting.TX_RATE: settings.min_tx_rate is not None or settings.max_tx_rate is not None,
        VfSetting.SPOOFCHK: settings.spoofchk is not None,
        VfSetting.TRUST: settings.trust is not None,
        VfSetting.LINK_STATE: settings.link_state is not None,
    }
    return tuple(s for s in APPLY_ORDER if present[s])


def differing(wanted: VfSettings, current: VfState) -> VfSettings:
    """``wanted`` with every field already equal to ``current`` set to ``None``.

    VLAN and TX rate travel as one attribute each, so they are kept whole if any
    of their parts differ.
    """
    vlan_same = (
        wanted.vlan in (None, current.vlan)
        and wanted.qos in (None, current.qos)
        and (wanted.vlan_proto or VlanProto.DOT1Q) == current.vlan_proto
    )
    rate_same = wanted.min_tx_rate in (None, current.min_tx_rate) and wanted.max_tx_rate in (
        None, current.max_tx_rate)
    return dataclasses.replace(
        wanted,
        mac=None if wanted.mac in (None, current.mac) else wanted.mac,
        vlan=None if vlan_same else (wanted.vlan if wanted.vlan is not None else current.vlan),
        qos=None if vlan_same else wanted.qos,
        vlan_proto=None if vlan_same else wanted.vlan_proto,
        min_tx_rate=None if rate_same else wanted.min_tx_rate,
        max_tx_rate=None if rate_same else wanted.max_tx_rate,
        spoofchk=None if wanted.spoofchk in (None, current.spoofchk) else wanted.spoofchk,
        trust=None if wanted.trust in (None, current.trust) else wanted.trust,
        link_state=None if wanted.link_state in (None, current.link_state) else wanted.link_state,
    )


def diff(expected: VfSettings, actual: VfState) -> list[str]:
    """Human-readable mismatches between requested settings and the VF's state (CNI CHECK)."""
    checks: list[tuple[str, object, object]] = [
        ("mac", expected.mac, actual.mac),
        ("vlan", expected.vlan, actual.vlan),
        ("qos", expected.qos, actual.qos),
        ("vlan_proto", expected.vlan_proto, actual.vlan_proto),
        ("spoofchk", expected.spoofchk, actual.spoofchk),
        ("trust", expected.trust, actual.trust),
        ("link_state", expected.link_state, actual.link_state),
        ("min_tx_rate", expected.min_tx_rate, actual.min_tx_rate),
        ("max_tx_rate", expected.max_tx_rate, actual.max_tx_rate),
    ]
    return [
        f"{name}: expected {want}, found {got}"
        for name, want, got in checks
        if want is not None and str(want).lower() != str(got).lower()
    ]


class NetlinkVfAdmin:
    """:class:`VfAdmin` over rtnetlink (``IFLA_VFINFO_LIST`` / ``RTM_SETLINK``)."""

    def __init__(self, netlink: VfSetter, netns: str | None = None) -> None:
        self._netlink = netlink
        self._netns = netns
        """Where the PF netdevs live (``None``: the host netns)."""

    def read(self, pf: IfName, index: int) -> VfState:
        for state in self._netlink.vf_states(pf, self._netns):
            if state.index == index:
                return state
        raise DeviceNotFoundError("VF", f"{pf} vf {index}", "the PF reports no such VF")

    def apply(self, pf: IfName, index: int, settings: VfSettings) -> tuple[VfSetting, ...]:
        """Apply each requested setting with its own request; returns what was applied."""
        target = f"{pf} vf {index}"
        applied: list[VfSetting] = []
        for setting in requested(settings):
            try:
                self._netlink.set_vf(pf, index, setting, settings, self._netns)
            except NetlinkOpError as e:
                log.info("driver refused VF %s on %s: errno %s", setting, target, e.errno)
                raise VfSettingError(str(setting), target, e.errno, tuple(applied)) from e
            applied.append(setting)
            log.debug("applied VF %s on %s", setting, target)
        return tuple(applied)

    def restore(self, pf: IfName, index: int, state: VfState) -> tuple[VfSetting, ...]:
        """Put a VF back to a snapshot, sending only attributes that differ now."""
        current = self.read(pf, index)
        wanted = differing(VfSettings.restoring(state), current)
        if wanted.vlan_proto is VlanProto.DOT1Q:
            # plain 802.1Q goes back as the legacy IFLA_VF_VLAN every driver accepts
            wanted = dataclasses.replace(wanted, vlan_proto=None)
        return self.apply(pf, index, wanted)
