"""PF-side VF administration through the real igb driver (sriov.vfadmin over sriov.netlink).

Each setting is read back twice: through ``NetlinkVfAdmin.read()`` and through
``ip -j link show <pf>`` (iproute2, an independent parser of the same kernel answer).
"""

from __future__ import annotations

import errno
import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from sriov.types import IfName, LinkState, MacAddress, VfSettings, VlanProto
from tests.vm import hw
from tests.vm.conftest import EnableVfs, colleague_module, link_with_carrier


@pytest.fixture
def admin() -> Iterator[Any]:
    netlink = colleague_module("sriov.netlink")
    vfadmin = colleague_module("sriov.vfadmin")
    with netlink.Netlink() as nl:
        yield vfadmin.NetlinkVfAdmin(nl)


@pytest.fixture
def pf_name(sriov_pf: hw.RealPf, enable_vfs: EnableVfs) -> IfName:
    enable_vfs(sriov_pf, 2, wait_netdevs=False)
    assert sriov_pf.netdev is not None
    return IfName(sriov_pf.netdev)


def ip_vfinfo(pf: str, index: int) -> dict[str, Any]:
    out = subprocess.run(["ip", "-j", "link", "show", "dev", pf], check=True,
                         capture_output=True, text=True).stdout
    return next(v for v in json.loads(out)[0]["vfinfo_list"] if v["vf"] == index)


def test_mac_is_set_and_read_back(admin: Any, pf_name: IfName) -> None:
    mac = MacAddress("02:00:00:5a:10:01")

    admin.apply(pf_name, 1, VfSettings(mac=mac))

    assert admin.read(pf_name, 1).mac == mac
    assert ip_vfinfo(pf_name, 1)["address"] == mac
    assert admin.read(pf_name, 0).mac == "00:00:00:00:00:00", "VF 0 must be untouched"


def test_vlan_and_qos_are_set_and_read_back(admin: Any, pf_name: IfName) -> None:
    admin.apply(pf_name, 0, VfSettings(vlan=100, qos=3))

    state = admin.read(pf_name, 0)
    assert (state.vlan, state.qos, state.vlan_proto) == (100, 3, VlanProto.DOT1Q)
    vlan = ip_vfinfo(pf_name, 0)["vlan_list"][0]
    assert (vlan["vlan"], vlan["qos"]) == (100, 3)


def test_vlan_with_explicit_802_1q_proto_uses_the_vlan_list_and_works(admin: Any,
                                                                       pf_name: IfName) -> None:
    # IFLA_VF_VLAN_LIST with a 16-byte ifla_vf_vlan_info; a 14-byte one would get EINVAL.
    admin.apply(pf_name, 0, VfSettings(vlan=200, qos=0, vlan_proto=VlanProto.DOT1Q))

    assert admin.read(pf_name, 0).vlan == 200
    assert ip_vfinfo(pf_name, 0)["vlan_list"][0]["vlan"] == 200


def test_spoofchk_and_trust_are_set_and_read_back(admin: Any, pf_name: IfName) -> None:
    admin.apply(pf_name, 0, VfSettings(spoofchk=False, trust=True))

    state = admin.read(pf_name, 0)
    assert (state.spoofchk, state.trust) == (False, True)
    info = ip_vfinfo(pf_name, 0)
    assert (info["spoofchk"], info["trust"]) == (False, True)


def test_max_tx_rate_is_set_while_the_pf_is_up(admin: Any, pf_name: IfName) -> None:
    link_with_carrier(pf_name)  # igb accepts a rate only with the PF link up

    admin.apply(pf_name, 0, VfSettings(max_tx_rate=100))

    assert admin.read(pf_name, 0).max_tx_rate == 100
    assert ip_vfinfo(pf_name, 0)["rate"]["max_tx"] == 100


@pytest.mark.parametrize(
    ("settings", "setting", "expected_errno"),
    [
        (VfSettings(link_state=LinkState.ENABLE), "link_state", errno.EOPNOTSUPP),
        (VfSettings(vlan=100, vlan_proto=VlanProto.DOT1AD), "vlan", errno.EPROTONOSUPPORT),
        (VfSettings(min_tx_rate=10), "tx_rate", errno.EINVAL),
    ],
    ids=["link_state-EOPNOTSUPP", "802.1ad-EPROTONOSUPPORT", "min_tx_rate-EINVAL"],
)
def test_igb_refusals_name_the_setting_and_the_kernel_errno(
        admin: Any, pf_name: IfName, settings: VfSettings, setting: str,
        expected_errno: int) -> None:
    errors = colleague_module("sriov.errors")
    before = admin.read(pf_name, 0)

    with pytest.raises(errors.VfSettingError) as refused:
        admin.apply(pf_name, 0, settings)

    assert refused.value.setting == setting
    assert refused.value.errno == expected_errno, refused.value
    assert refused.value.applied == ()
    assert admin.read(pf_name, 0) == before, "a refused setting must change nothing"


def test_refusal_reports_what_was_already_applied(admin: Any, pf_name: IfName) -> None:
    errors = colleague_module("sriov.errors")
    mac = MacAddress("02:00:00:5a:10:02")

    with pytest.raises(errors.VfSettingError) as refused:
        admin.apply(pf_name, 0, VfSettings(vlan=10, mac=mac, link_state=LinkState.DISABLE))

    assert refused.value.setting == "link_state"
    assert tuple(refused.value.applied) == ("vlan", "mac")
    state = admin.read(pf_name, 0)
    assert (state.vlan, state.mac) == (10, mac)
