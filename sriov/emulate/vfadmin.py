"""PF-side VF administration for emulated VFs (the ``VfAdmin`` protocol).

Real drivers keep per-VF settings (``ip link set <pf> vf N ...``) in the PF. Here they
live in ``<root>/sriov-emu-vf/<pf-address>/<index>.json`` and are enforced where the
emulation can: a VF's port VLAN puts its wire end on that VLAN's bridge, so VFs on
the same port VLAN reach each other and VFs on different VLANs do not;
``link_state disable`` takes the wire port down so the VF loses carrier. QoS, proto,
spoofchk, trust and rates are recorded and reported back, not enforced.

Settings are applied one at a time in the order of :class:`VfSetting`; what a driver
profile refuses raises :class:`VfSettingError` with the errno the real driver returns
and ``applied`` listing what this request already changed — the same contract as the
netlink admin, so callers cannot tell the two apart.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import logging
import os
from pathlib import Path
from typing import Protocol

from sriov import validate
from sriov.emulate.spec import STATE_FILE, EmulationState, Profile, VfLocation, VfRecord
from sriov.errors import DeviceNotFoundError, EmulationError, InvalidInputError, VfSettingError
from sriov.types import IfName, LinkState, MacAddress, VfSetting, VfSettings, VfState, VlanProto
from sriov.vfadmin import differing, requested

log = logging.getLogger(__name__)

SETTINGS_DIR = "sriov-emu-vf"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class DriverQuirks:
    """Which VF settings a PF driver refuses, and with which errno (as the kernel returns)."""

    link_state: bool
    """ndo_set_vf_link_state exists (igb has none: EOPNOTSUPP)."""
    vlan_8021ad: bool
    """802.1ad port VLANs accepted (igb, i40e, mlx5 return EPROTONOSUPPORT)."""
    min_tx_rate: bool
    """A non-zero min_tx_rate is accepted (igb, i40e return EINVAL)."""


QUIRKS: dict[Profile, DriverQuirks] = {
    Profile.IGB: DriverQuirks(link_state=False, vlan_8021ad=False, min_tx_rate=False),
    Profile.X710: DriverQuirks(link_state=True, vlan_8021ad=False, min_tx_rate=False),
    Profile.CX5: DriverQuirks(link_state=True, vlan_8021ad=False, min_tx_rate=True),
}


def initial_state(index: int) -> VfState:
    """What real igb/i40e/mlx5 report for a fresh VF."""
    return VfState(index=index, mac=MacAddress("00:00:00:00:00:00"), spoofchk=True, trust=False,
                   link_state=LinkState.AUTO)


def refusal(quirks: DriverQuirks, setting: VfSetting, want: VfState) -> int | None:
    """The errno the driver/kernel answers for ``setting`` at value ``want``, or None (pure)."""
    if setting is VfSetting.VLAN:
        if not 0 <= want.vlan <= 4095 or not 0 <= want.qos <= 7:
            return errno.EINVAL
        if want.vlan_proto is VlanProto.DOT1AD and not quirks.vlan_8021ad:
            return errno.EPROTONOSUPPORT
    if setting is VfSetting.TX_RATE:
        if want.min_tx_rate < 0 or want.max_tx_rate < 0:
            return errno.EINVAL
        if want.min_tx_rate and not quirks.min_tx_rate:
            return errno.EINVAL
        if want.max_tx_rate and want.min_tx_rate > want.max_tx_rate:
            return errno.EINVAL
    if setting is VfSetting.LINK_STATE and not quirks.link_state:
        return errno.EOPNOTSUPP
    return None


def merge(state: VfState, settings: VfSettings, setting: VfSetting) -> VfState | None:
    """``state`` with the fields of one ``setting`` taken from ``settings``; None if untouched.

    VLAN, QoS and proto travel together (one IFLA_VF_VLAN_LIST attribute), and so do
    the two rates (IFLA_VF_RATE), exactly as the netlink admin sends them.
    """
    s, r = settings, dataclasses.replace
    match setting:
        case VfSetting.VLAN if s.vlan is not None:
            return r(state, vlan=s.vlan,
                     qos=0 if s.qos is None else s.qos,
                     vlan_proto=VlanProto.DOT1Q if s.vlan_proto is None else s.vlan_proto)
        case VfSetting.MAC if s.mac is not None:
            return r(state, mac=validate.admin_mac(s.mac))
        case VfSetting.TX_RATE if (s.min_tx_rate, s.max_tx_rate) != (None, None):
            return r(state,
                     min_tx_rate=state.min_tx_rate if s.min_tx_rate is None else s.min_tx_rate,
                     max_tx_rate=state.max_tx_rate if s.max_tx_rate is None else s.max_tx_rate)
        case VfSetting.SPOOFCHK if s.spoofchk is not None:
            return r(state, spoofchk=s.spoofchk)
        case VfSetting.TRUST if s.trust is not None:
            return r(state, trust=s.trust)
        case VfSetting.LINK_STATE if s.link_state is not None:
            return r(state, link_state=s.link_state)
    return None


class WirePorts(Protocol):
    """The link operations the emulated admin needs (implemented over ``sriov.netlink``)."""

    def set_port_vlan(self, wire: IfName, vid: int, previous: int) -> None:
        """Put the wire port on VLAN ``vid`` (0: untagged) instead of ``previous``."""

    def set_port_up(self, wire: IfName, up: bool) -> None: ...

    def set_vf_mac(self, record: VfRecord, mac: MacAddress) -> None: ...


class EmulatedVfAdmin:
    """``VfAdmin`` for the emulated host under ``root``."""

    def __init__(self, root: Path, ports: WirePorts) -> None:
        self._root = root
        self._ports = ports

    def read(self, pf: IfName, index: int) -> VfState:
        _, record = self._find(pf, index)
        return self._load(record)

    def apply(self, pf: IfName, index: int, settings: VfSettings) -> tuple[VfSetting, ...]:
        state, record = self._find(pf, index)
        quirks = QUIRKS[state.spec.profile]
        current = self._load(record)
        applied: list[VfSetting] = []
        for setting in requested(settings):
            want = merge(current, settings, setting)
            if want is None:
                continue
            code = refusal(quirks, setting, want)
            if code is not None:
                raise VfSettingError(setting.value, f"{pf} vf {index}", code,
                                     tuple(a.value for a in applied))
            self._enforce(setting, record, current, want, state.pfs[record.pf].carrier)
            current = want
            self._save(record, current)
            applied.append(setting)
            log.debug("emulated vf admin: %s vf %s %s applied", pf, index, setting.value)
        return tuple(applied)

    def restore(self, pf: IfName, index: int, state: VfState) -> tuple[VfSetting, ...]:
        """Put a VF back to a snapshot, sending only the settings that differ from now.

        (Re-sending an unchanged ``link_state auto`` would fail on igb for nothing.)
        """
        wanted = differing(VfSettings.restoring(state), self.read(pf, index))
        return self.apply(pf, index, wanted)

    def reset(self, record: VfRecord) -> None:
        """Forget a VF's settings (VF destroyed by ``sriov_numvfs``)."""
        self._path(record).unlink(missing_ok=True)

    def _enforce(self, setting: VfSetting, record: VfRecord, current: VfState, want: VfState,
                 pf_carrier: bool) -> None:
        if record.location in (VfLocation.ABSENT, VfLocation.PARKED):
            return  # no wire port (tree-only, or vfio-bound): recorded, enforced on rebind
        if setting is VfSetting.VLAN:
            self._ports.set_port_vlan(record.wire, want.vlan, current.vlan)
        elif setting is VfSetting.LINK_STATE:
            up = want.link_state is LinkState.ENABLE or (
                want.link_state is LinkState.AUTO and pf_carrier)
            self._ports.set_port_up(record.wire, up)
        elif setting is VfSetting.MAC and want.mac != "00:00:00:00:00:00":
            self._ports.set_vf_mac(record, want.mac)

    def _find(self, pf: IfName, index: int) -> tuple[EmulationState, VfRecord]:
        state = load_state(self._root)
        pf_record = state.pf_by_name(pf)
        if pf_record is None:
            raise DeviceNotFoundError("emulated PF", pf, f"not in {self._root / STATE_FILE}")
        record = next((v for v in state.vfs_of(pf_record.index) if v.index == index), None)
        if record is None:
            raise DeviceNotFoundError("VF", f"{pf} vf {index}", "no such VF index")
        return state, record

    def _path(self, record: VfRecord) -> Path:
        return self._root / SETTINGS_DIR / record.pf_address / f"{record.index}.json"

    def _load(self, record: VfRecord) -> VfState:
        try:
            raw = json.loads(self._path(record).read_text())
        except FileNotFoundError:
            return initial_state(record.index)
        except (OSError, ValueError) as e:
            raise EmulationError(f"{self._path(record)}: unreadable VF settings: {e}") from e
        return _state_from_json(record.index, raw, self._path(record))

    def _save(self, record: VfRecord, state: VfState) -> None:
        path = self._path(record)
        path.parent.mkdir(parents=True, exist_ok=True)
        raw = dataclasses.asdict(state)
        raw["vlan_proto"] = state.vlan_proto.value
        raw["link_state"] = state.link_state.value if state.link_state else None
        write_atomic(path, json.dumps(raw, indent=1) + "\n")


def _state_from_json(index: int, raw: object, path: Path) -> VfState:
    if not isinstance(raw, dict):
        raise EmulationError(f"{path}: expected a JSON object")
    try:
        return VfState(
            index=index, mac=validate.admin_mac(raw["mac"]), vlan=int(raw["vlan"]),
            qos=int(raw["qos"]), vlan_proto=VlanProto(raw["vlan_proto"]),
            spoofchk=raw["spoofchk"], trust=raw["trust"],
            link_state=None if raw["link_state"] is None else LinkState(raw["link_state"]),
            min_tx_rate=int(raw["min_tx_rate"]), max_tx_rate=int(raw["max_tx_rate"]))
    except (KeyError, ValueError, InvalidInputError) as e:
        raise EmulationError(f"{path}: malformed VF settings ({e})") from e


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def load_state(root: Path) -> EmulationState:
    """Read ``<root>/sriov-emu.json``; a clear EmulationError if it is missing or corrupt."""
    path = root / STATE_FILE
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError as e:
        raise EmulationError(f"no emulated host at {root} ({path} missing); "
                             "run 'sriovctl emulate up' first") from e
    except (OSError, ValueError) as e:
        raise EmulationError(f"{path}: unreadable: {e}") from e
    try:
        return EmulationState.from_json(raw)
    except InvalidInputError as e:
        raise EmulationError(f"{path}: {e}") from e
