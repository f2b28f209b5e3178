"""PF-side VF settings for the VF and DPDK modes: snapshot (de)serialisation, apply, exact restore.

Pure helpers over the :class:`sriov.vfadmin.VfAdmin` protocol (netlink on real PFs, the emulated
admin on an emulated host). Settings go out one at a time; a refusal restores exactly the
settings of the same request that were already applied (``VfSettingError.applied``).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable
from typing import Any

from sriov import validate
from sriov.errors import VfSettingError
from sriov.types import IfName, LinkState, MacAddress, VfSetting, VfSettings, VfState, VlanProto
from sriov.vfadmin import VfAdmin, differing

log = logging.getLogger(__name__)

FIELDS_OF: dict[VfSetting, tuple[str, ...]] = {
    VfSetting.VLAN: ("vlan", "qos", "vlan_proto"),
    VfSetting.MAC: ("mac",),
    VfSetting.TX_RATE: ("min_tx_rate", "max_tx_rate"),
    VfSetting.SPOOFCHK: ("spoofchk",),
    VfSetting.TRUST: ("trust",),
    VfSetting.LINK_STATE: ("link_state",),
}
"""Which :class:`VfSettings` fields one independently applied setting carries."""


def state_to_json(state: VfState) -> dict[str, Any]:
    raw = dataclasses.asdict(state)
    raw["vlan_proto"] = state.vlan_proto.value
    raw["link_state"] = state.link_state.value if state.link_state else None
    return raw


def state_from_json(raw: Any) -> VfState:
    """The snapshot stored in an attachment record; ``ValueError`` when it is malformed."""
    if not isinstance(raw, dict):
        raise ValueError("VF state snapshot must be a JSON object")
    try:
        return VfState(
            index=int(raw["index"]), mac=validate.admin_mac(raw["mac"]), vlan=int(raw["vlan"]),
            qos=int(raw["qos"]), vlan_proto=VlanProto(raw["vlan_proto"]),
            spoofchk=_opt_bool(raw.get("spoofchk")), trust=_opt_bool(raw.get("trust")),
            link_state=LinkState(raw["link_state"]) if raw.get("link_state") else None,
            min_tx_rate=int(raw["min_tx_rate"]), max_tx_rate=int(raw["max_tx_rate"]))
    except (KeyError, TypeError) as e:
        raise ValueError(f"VF state snapshot lacks or mistypes {e}") from None


def _opt_bool(value: Any) -> bool | None:
    return None if value is None else bool(value)


def only(settings: VfSettings, keep: Iterable[VfSetting]) -> VfSettings:
    """``settings`` with every field not carried by one of ``keep`` set to ``None``."""
    kept = {f for s in keep for f in FIELDS_OF[s]}
    cleared = {f: None for s in FIELDS_OF.values() for f in s if f not in kept}
    return dataclasses.replace(settings, **cleared)


def apply(admin: VfAdmin, pf: IfName, index: int, wanted: VfSettings,
          snapshot: VfState) -> tuple[VfSetting, ...]:
    """Apply ``wanted``; on a refusal restore what this call already applied, then re-raise."""
    try:
        return admin.apply(pf, index, wanted)
    except VfSettingError as e:
        applied = tuple(VfSetting(a) for a in e.applied)
        if applied:
            log.info("VF setting %s refused on %s vf %s; undoing %s", e.setting, pf, index,
                     ", ".join(applied))
            restore(admin, pf, index, snapshot, applied)
        raise


def restore(admin: VfAdmin, pf: IfName, index: int, snapshot: VfState,
            settings: Iterable[VfSetting] | None = None) -> tuple[VfSetting, ...]:
    """Put ``settings`` (default: all) back to ``snapshot``, sending only what differs now."""
    wanted = VfSettings.restoring(snapshot)
    if settings is not None:
        wanted = only(wanted, settings)
    wanted = differing(wanted, admin.read(pf, index))
    if wanted.vlan_proto is VlanProto.DOT1Q:
        # plain 802.1Q goes back as the legacy IFLA_VF_VLAN every driver accepts
        wanted = dataclasses.replace(wanted, vlan_proto=None)
    done = admin.apply(pf, index, wanted)
    if done:
        log.info("restored VF %s of %s: %s", index, pf, ", ".join(done))
    return done


NO_ADMIN_MAC = MacAddress("00:00:00:00:00:00")


def before_netdev_restore(snapshot: VfState, netdev_mac: str | None) -> VfState:
    """The PF-side state to restore while the VF netdev does not wear its own MAC yet.

    A VF driver reports the MAC its netdev wears to the PF, which then shows it as the VF's MAC
    (igb does) although no admin MAC is set. Restoring that MAC as an admin MAC would pin it:
    igb then refuses every MAC change from the VF, even to the same MAC (EADDRNOTAVAIL). So a
    snapshot MAC equal to the netdev's own is first restored as "no admin MAC"; the netdev's MAC
    restore reports it again, and a last MAC-only :func:`restore` sets it as an admin MAC only if
    the PF still shows something else. (Netlink cannot tell an admin MAC equal to the netdev's
    own from a reported one; both come back the same in ``ip link``.)
    """
    if netdev_mac and snapshot.mac != NO_ADMIN_MAC and snapshot.mac == netdev_mac.lower():
        return dataclasses.replace(snapshot, mac=NO_ADMIN_MAC)
    return snapshot
