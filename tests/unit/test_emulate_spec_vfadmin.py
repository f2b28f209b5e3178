"""Emulated VF admin: driver refusals, one-setting-at-a-time semantics, the settings store.

The wire-port side effects are real in tests/integration/test_emulate_host.py; here a
recording stand-in for the three port operations lets the pure rules run without root.
"""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest

from sriov.emulate import spec as emu
from sriov.emulate.vfadmin import QUIRKS, EmulatedVfAdmin, initial_state, merge, refusal
from sriov.errors import DeviceNotFoundError, EmulationError, VfSettingError
from sriov.types import (
    IfName,
    LinkState,
    MacAddress,
    PciAddress,
    VfSetting,
    VfSettings,
    VlanProto,
)


class RecordingPorts:
    def __init__(self) -> None:
        self.calls: list[tuple[str, object, object]] = []

    def set_port_vlan(self, wire: IfName, vid: int, previous: int) -> None:
        self.calls.append(("vlan", wire, vid))

    def set_port_up(self, wire: IfName, up: bool) -> None:
        self.calls.append(("up", wire, up))

    def set_vf_mac(self, record: emu.VfRecord, mac: MacAddress) -> None:
        self.calls.append(("mac", record.netdev, mac))


def _write_state(root: Path, profile: emu.Profile) -> None:
    s = emu.EmulationSpec(pfs=1, vfs=2, profile=profile)
    pf = emu.PfRecord(index=0, address=PciAddress("0000:3b:00.0"), netdev=emu.pf_netdev(s, 0),
                      wire=emu.pf_wire(s, 0), mac=emu.pf_mac(s, 0), numa_node=0)
    vfs = tuple(
        emu.VfRecord(pf=0, pf_address=pf.address, index=i, address=PciAddress(f"0000:3b:02.{i}"),
                     wire=emu.vf_wire(s, 0, i), driver="iavf", location=emu.VfLocation.HOST,
                     netdev=emu.vf_netdev(s, 0, i), mac=emu.vf_mac(s, 0, i), mtu=1500)
        for i in range(2))
    state = emu.EmulationState(spec=s, pfs=(pf,), vfs=vfs)
    (root / emu.STATE_FILE).write_text(json.dumps(state.to_json()))


@pytest.fixture
def igb(tmp_path: Path) -> tuple[EmulatedVfAdmin, RecordingPorts]:
    _write_state(tmp_path, emu.Profile.IGB)
    ports = RecordingPorts()
    return EmulatedVfAdmin(tmp_path, ports), ports


def test_fresh_vf_reads_like_a_real_driver(igb: tuple[EmulatedVfAdmin, RecordingPorts]) -> None:
    admin, _ = igb
    assert admin.read(IfName("sriovpf0"), 1) == initial_state(1)
    state = admin.read(IfName("sriovpf0"), 1)
    assert (state.mac, state.vlan, state.spoofchk, state.trust, state.link_state) == (
        "00:00:00:00:00:00", 0, True, False, LinkState.AUTO)


def test_apply_puts_the_wire_port_on_the_vlan_and_reports_applied(
        igb: tuple[EmulatedVfAdmin, RecordingPorts]) -> None:
    admin, ports = igb
    applied = admin.apply(IfName("sriovpf0"), 0, VfSettings(vlan=100, trust=True,
                                                             mac=MacAddress("02:11:22:33:44:55")))
    assert applied == (VfSetting.VLAN, VfSetting.MAC, VfSetting.TRUST)
    assert ("vlan", "sriovw0v0", 100) in ports.calls
    assert ("mac", "sriovpf0v0", "02:11:22:33:44:55") in ports.calls
    state = admin.read(IfName("0000:3b:00.0"), 0)  # PF by PCI address works too
    assert (state.vlan, state.trust, state.mac) == (100, True, "02:11:22:33:44:55")
    admin.apply(IfName("sriovpf0"), 0, VfSettings(vlan=0))
    assert ports.calls[-1] == ("vlan", "sriovw0v0", 0)  # back to the untagged segment


def test_igb_refuses_link_state_after_applying_earlier_settings(
        igb: tuple[EmulatedVfAdmin, RecordingPorts]) -> None:
    admin, _ = igb
    with pytest.raises(VfSettingError) as err:
        admin.apply(IfName("sriovpf0"), 1, VfSettings(vlan=7, spoofchk=False,
                                                      link_state=LinkState.ENABLE))
    assert (err.value.setting, err.value.errno) == ("link_state", errno.EOPNOTSUPP)
    assert err.value.applied == ("vlan", "spoofchk")
    after = admin.read(IfName("sriovpf0"), 1)
    assert (after.vlan, after.spoofchk, after.link_state) == (7, False, LinkState.AUTO)


@pytest.mark.parametrize(
    ("settings", "setting", "code"),
    [
        (VfSettings(vlan=5, vlan_proto=VlanProto.DOT1AD), "vlan", errno.EPROTONOSUPPORT),
        (VfSettings(min_tx_rate=100, max_tx_rate=1000), "tx_rate", errno.EINVAL),
        (VfSettings(vlan=4096), "vlan", errno.EINVAL),
        (VfSettings(vlan=1, qos=8), "vlan", errno.EINVAL),
    ],
)
def test_igb_refusals_carry_the_kernel_errno(
        igb: tuple[EmulatedVfAdmin, RecordingPorts], settings: VfSettings, setting: str,
        code: int) -> None:
    admin, _ = igb
    with pytest.raises(VfSettingError) as err:
        admin.apply(IfName("sriovpf0"), 0, settings)
    assert (err.value.setting, err.value.errno, err.value.applied) == (setting, code, ())
    assert admin.read(IfName("sriovpf0"), 0) == initial_state(0)


def test_restore_sends_only_what_changed(igb: tuple[EmulatedVfAdmin, RecordingPorts]) -> None:
    admin, _ = igb
    before = admin.read(IfName("sriovpf0"), 0)
    admin.apply(IfName("sriovpf0"), 0, VfSettings(vlan=9, qos=3, trust=True, max_tx_rate=500))
    # link_state is unchanged (auto), so igb's missing link_state op is never hit
    assert admin.restore(IfName("sriovpf0"), 0, before) == (
        VfSetting.VLAN, VfSetting.TX_RATE, VfSetting.TRUST)
    assert admin.read(IfName("sriovpf0"), 0) == before


def test_x710_accepts_link_state_and_takes_the_wire_port_down(tmp_path: Path) -> None:
    _write_state(tmp_path, emu.Profile.X710)
    ports = RecordingPorts()
    admin = EmulatedVfAdmin(tmp_path, ports)
    admin.apply(IfName("sriovpf0"), 1, VfSettings(link_state=LinkState.DISABLE))
    assert ports.calls == [("up", "sriovw0v1", False)]
    assert admin.read(IfName("sriovpf0"), 1).link_state is LinkState.DISABLE


def test_unknown_pf_or_index_is_device_not_found(
        igb: tuple[EmulatedVfAdmin, RecordingPorts]) -> None:
    admin, _ = igb
    with pytest.raises(DeviceNotFoundError):
        admin.read(IfName("eth9"), 0)
    with pytest.raises(DeviceNotFoundError):
        admin.apply(IfName("sriovpf0"), 5, VfSettings(vlan=1))


def test_missing_or_corrupt_files_are_clear_errors(tmp_path: Path) -> None:
    admin = EmulatedVfAdmin(tmp_path, RecordingPorts())
    with pytest.raises(EmulationError, match="emulate up"):
        admin.read(IfName("sriovpf0"), 0)
    _write_state(tmp_path, emu.Profile.IGB)
    bad = tmp_path / "sriov-emu-vf" / "0000:3b:00.0" / "0.json"
    bad.parent.mkdir(parents=True)
    bad.write_text('{"mac": "zz"}')
    with pytest.raises(EmulationError, match=r"0\.json"):
        admin.read(IfName("sriovpf0"), 0)


def test_merge_leaves_untouched_settings_alone() -> None:
    state = initial_state(0)
    assert merge(state, VfSettings(), VfSetting.VLAN) is None
    assert merge(state, VfSettings(max_tx_rate=10), VfSetting.TX_RATE).max_tx_rate == 10  # type: ignore[union-attr]
    assert refusal(QUIRKS[emu.Profile.CX5], VfSetting.TX_RATE,
                   merge(state, VfSettings(min_tx_rate=5, max_tx_rate=10),  # type: ignore[arg-type]
                         VfSetting.TX_RATE)) is None
