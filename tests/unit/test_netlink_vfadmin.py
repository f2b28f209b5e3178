"""NetlinkVfAdmin ordering, partial-failure reporting, restore and diff (no kernel needed)."""

from __future__ import annotations

import dataclasses
import errno

import pytest

from sriov.errors import DeviceNotFoundError, NetlinkOpError, VfSettingError
from sriov.types import IfName, LinkState, MacAddress, VfSetting, VfSettings, VfState, VlanProto
from sriov.vfadmin import APPLY_ORDER, NetlinkVfAdmin, diff, requested

PF = IfName("eth0")


class RecordingNetlink:
    """Records set_vf calls; refuses the settings in ``refuse`` with the given errno."""

    def __init__(self, state: VfState, refuse: dict[VfSetting, int] | None = None) -> None:
        self.state = state
        self.refuse = refuse or {}
        self.calls: list[VfSetting] = []

    def vf_states(self, pf: str, netns: str | None = None) -> tuple[VfState, ...]:
        return (self.state,)

    def set_vf(self, pf: str, index: int, setting: VfSetting, settings: VfSettings,
               netns: str | None = None) -> None:
        if setting in self.refuse:
            raise NetlinkOpError(f"set VF {setting}", f"{pf} vf {index}", self.refuse[setting])
        self.calls.append(setting)


ALL = VfSettings(mac=MacAddress("02:00:00:00:00:01"), vlan=10, qos=1, spoofchk=True, trust=False,
                 link_state=LinkState.ENABLE, max_tx_rate=100)
STATE = VfState(index=2, mac=MacAddress("00:00:00:00:00:00"), spoofchk=True, trust=False,
                link_state=LinkState.AUTO)


def test_settings_are_applied_one_by_one_in_sriov_cni_order() -> None:
    nl = RecordingNetlink(STATE)
    applied = NetlinkVfAdmin(nl).apply(PF, 2, ALL)
    assert nl.calls == list(APPLY_ORDER)
    assert applied == APPLY_ORDER


def test_none_fields_are_left_untouched() -> None:
    nl = RecordingNetlink(STATE)
    assert NetlinkVfAdmin(nl).apply(PF, 2, VfSettings(trust=True, vlan=0)) == (
        VfSetting.VLAN,
        VfSetting.TRUST,
    )
    assert NetlinkVfAdmin(nl).apply(PF, 2, VfSettings()) == ()
    assert requested(VfSettings(min_tx_rate=5)) == (VfSetting.TX_RATE,)


@pytest.mark.parametrize(
    ("setting", "code", "reason"),
    [
        (VfSetting.LINK_STATE, errno.EOPNOTSUPP, "EOPNOTSUPP (not supported by this driver)"),
        (VfSetting.VLAN, errno.EPROTONOSUPPORT,
         "EPROTONOSUPPORT (protocol not supported by this driver)"),
        (VfSetting.TX_RATE, errno.EINVAL, "EINVAL (value rejected by the driver)"),
        (VfSetting.TRUST, errno.EPERM, "EPERM (Operation not permitted)"),
    ],
)
def test_a_refusal_names_the_setting_and_what_was_applied_before(setting, code, reason) -> None:
    nl = RecordingNetlink(STATE, refuse={setting: code})
    with pytest.raises(VfSettingError) as caught:
        NetlinkVfAdmin(nl).apply(PF, 2, ALL)
    err = caught.value
    before = APPLY_ORDER[: APPLY_ORDER.index(setting)]
    assert (err.setting, err.errno, err.target) == (setting, code, "eth0 vf 2")
    assert err.applied == before
    assert str(err) == f"set VF {setting} eth0 vf 2: {reason}"
    assert nl.calls == list(before)  # nothing after the refusal was attempted


def test_read_of_an_unknown_vf_is_device_not_found() -> None:
    admin = NetlinkVfAdmin(RecordingNetlink(STATE))
    assert admin.read(PF, 2) == STATE
    with pytest.raises(DeviceNotFoundError, match="eth0 vf 7"):
        admin.read(PF, 7)


def test_restore_sends_only_what_differs() -> None:
    current = dataclasses.replace(STATE, vlan=10, qos=1, trust=True, max_tx_rate=100)
    nl = RecordingNetlink(current)
    applied = NetlinkVfAdmin(nl).restore(PF, 2, STATE)
    assert applied == (VfSetting.VLAN, VfSetting.TX_RATE, VfSetting.TRUST)


def test_restore_of_an_unchanged_vf_sends_nothing() -> None:
    nl = RecordingNetlink(STATE)
    assert NetlinkVfAdmin(nl).restore(PF, 2, STATE) == ()
    assert nl.calls == []


def test_diff_reports_each_mismatch_for_cni_check() -> None:
    actual = VfState(
        index=0,
        mac=MacAddress("02:00:00:00:00:09"),
        vlan=10,
        vlan_proto=VlanProto.DOT1Q,
        spoofchk=False,
        trust=None,
    )
    expected = VfSettings(mac=MacAddress("02:00:00:00:00:01"), vlan=10, spoofchk=True)
    assert diff(expected, actual) == [
        "mac: expected 02:00:00:00:00:01, found 02:00:00:00:00:09",
        "spoofchk: expected True, found False",
    ]
    assert diff(VfSettings(vlan=10, vlan_proto=VlanProto.DOT1Q), actual) == []
