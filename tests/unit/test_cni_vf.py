"""Pure parts of the VF mode: record/snapshot round trips, setting subsets, refusal rollback."""

from __future__ import annotations

import errno
import json

import pytest

from cni import vf_netdev, vf_pf
from cni.protocol import Result
from cni.record import AttachmentMode, AttachmentRecord, DamagedRecord, NetnsId, VfPart
from sriov.errors import VfSettingError
from sriov.types import LinkState, MacAddress, VfSetting, VfSettings, VfState, VlanProto
from sriov.vfadmin import requested

STATE = VfState(index=3, mac=MacAddress("00:00:00:00:00:00"), vlan=5, qos=1,
                vlan_proto=VlanProto.DOT1Q, spoofchk=True, trust=False,
                link_state=LinkState.AUTO, min_tx_rate=0, max_tx_rate=10)


def test_snapshots_and_record_round_trip_through_json() -> None:
    snap = vf_netdev.NetdevSnapshot(name="ens1f0v3", mac="02:00:00:00:00:01", mtu=1500,
                                    altnames=("enp59s0f0v3",), up=True)
    record = AttachmentRecord(
        mode=AttachmentMode.VF, container_id="c1", ifname="net1", network="n",
        netns="/var/run/netns/x", netns_id=NetnsId(4, 4026532281), device_id="0000:3b:02.3",
        complete=True, result=Result(cni_version="1.1.0"),
        vf=VfPart(pf="ens1f0", vf_index=3, pf_state=STATE, netdev=snap))
    assert AttachmentRecord.from_json(json.loads(json.dumps(record.to_json()))) == record
    assert vf_pf.state_from_json(vf_pf.state_to_json(STATE)) == STATE


def test_corrupt_record_is_a_damaged_record_not_a_traceback() -> None:
    with pytest.raises(DamagedRecord, match="VF record"):
        AttachmentRecord.from_json({"mode": "vf", "deviceID": "x", "pf": "p", "vfIndex": 0,
                                    "containerID": "c", "ifname": "n", "pfState": {"index": 0}})


def test_temp_name_is_a_valid_per_vf_ifname() -> None:
    a, b = vf_netdev.temp_name("0000:3b:02.3"), vf_netdev.temp_name("0000:3b:02.4")
    assert a != b and len(a) <= 15 and a.startswith("sriovtmp")


def test_host_side_temp_names_are_unique_valid_ifnames() -> None:
    names = {vf_netdev.host_temp_name() for _ in range(50)}
    assert len(names) == 50
    assert all(len(n) <= 15 and n.startswith("sriovtmp") for n in names)


def test_only_keeps_the_fields_of_the_named_settings() -> None:
    full = VfSettings.restoring(STATE)
    vlan_only = vf_pf.only(full, [VfSetting.VLAN])
    assert requested(vlan_only) == (VfSetting.VLAN,)
    assert (vlan_only.vlan, vlan_only.qos, vlan_only.max_tx_rate) == (5, 1, None)


class RefusingAdmin:
    """Records what is applied; refuses ``refuse`` (the contract of sriov.vfadmin.VfAdmin)."""

    def __init__(self, refuse: VfSetting) -> None:
        self.refuse, self.state, self.calls = refuse, STATE, []

    def read(self, pf: str, index: int) -> VfState:
        return self.state

    def apply(self, pf: str, index: int, settings: VfSettings) -> tuple[VfSetting, ...]:
        done = []
        for s in requested(settings):
            if s is self.refuse:
                raise VfSettingError(s.value, f"{pf} vf {index}", errno.EOPNOTSUPP,
                                     tuple(d.value for d in done))
            self.calls.append(s)
            if s is VfSetting.VLAN:
                self.state = VfState(**{**vf_pf.state_to_json(self.state), "vlan": settings.vlan,
                                        "vlan_proto": VlanProto.DOT1Q,
                                        "link_state": LinkState.AUTO})
            done.append(s)
        return tuple(done)


def test_refusal_restores_exactly_what_was_applied_then_reraises() -> None:
    admin = RefusingAdmin(VfSetting.LINK_STATE)
    with pytest.raises(VfSettingError) as e:
        vf_pf.apply(admin, "pf0", 3, VfSettings(vlan=9, link_state=LinkState.ENABLE), STATE)
    assert e.value.setting == "link_state"
    assert admin.calls == [VfSetting.VLAN, VfSetting.VLAN]  # applied, then put back
    assert admin.state.vlan == 5
