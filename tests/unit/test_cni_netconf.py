"""Netconf parsing: every sriov-cni key valid and invalid, Multus deviceID, precedence rules."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cni.errors import CniCode, CniError
from cni.netconf import FallbackType, NetConf
from cni.protocol import CmdArgs
from sriov.types import LinkState, VlanProto


def conf(**keys: Any) -> dict[str, Any]:
    return {"cniVersion": "1.0.0", "name": "sriov-net", "type": "sriov", **keys}


def parse(obj: dict[str, Any], cni_args: str = "") -> NetConf:
    args = CmdArgs.from_env(
        {
            "CNI_COMMAND": "ADD",
            "CNI_CONTAINERID": "c1",
            "CNI_NETNS": "/x",
            "CNI_IFNAME": "net1",
            "CNI_PATH": "/opt/cni/bin",
            "CNI_ARGS": cni_args,
        }
    )
    return NetConf.parse(json.dumps(obj).encode(), args)


def error(obj: dict[str, Any], cni_args: str = "") -> CniError:
    with pytest.raises(CniError) as ei:
        parse(obj, cni_args)
    return ei.value


VALID = [
    (
        {"vlan": 100, "vlanQoS": 3, "vlanProto": "802.1AD"},
        {"vlan": 100, "vlan_qos": 3, "vlan_proto": VlanProto.DOT1AD},
    ),
    ({"vlan": 0}, {"vlan": 0, "vlan_qos": None}),
    ({}, {"vlan": None, "spoofchk": None, "trust": None, "link_state": None}),
    ({"spoofchk": "off", "trust": "on"}, {"spoofchk": False, "trust": True, "warnings": ()}),
    # sriov-cni: only exactly "on" turns it on; anything else is off (with a warning here)
    ({"spoofchk": "yes", "trust": "ON"}, {"spoofchk": False, "trust": False}),
    ({"spoofchk": "", "trust": ""}, {"spoofchk": None, "trust": None}),
    ({"link_state": ""}, {"link_state": None}),
    ({"logLevel": "verbose"}, {"log_level": "info"}),
    ({"logLevel": "warn"}, {"log_level": "info"}),
    ({"logLevel": ""}, {"log_level": "info", "warnings": ()}),
    ({"logLevel": "DEBUG"}, {"log_level": "debug"}),
    ({"link_state": "enable"}, {"link_state": LinkState.ENABLE}),
    ({"min_tx_rate": 100, "max_tx_rate": 1000}, {"min_tx_rate": 100, "max_tx_rate": 1000}),
    ({"min_tx_rate": 100, "max_tx_rate": 0}, {"min_tx_rate": 100}),
    ({"mac": "02:AA:bb:cc:dd:ee"}, {"mac": "02:aa:bb:cc:dd:ee"}),
    (
        {"logLevel": "debug", "logFile": "/tmp/x.log"},
        {"log_level": "debug", "log_file": "/tmp/x.log"},
    ),
    ({"mtu": 9000}, {"mtu": 9000}),
    ({"deviceID": "0000:3b:02.1"}, {"device_id": "0000:3b:02.1"}),
    ({"ipam": {"type": "host-local", "subnet": "10.0.0.0/24"}}, {"ipam_type": "host-local"}),
    (
        {
            "podResourcesSocket": "/var/lib/kubelet/pod-resources/kubelet.sock",
            "resourceName": "intel.com/sriov",
        },
        {"resource_name": "intel.com/sriov"},
    ),
    ({"somePluginKey": {"x": 1}}, {"extra": {"somePluginKey": {"x": 1}}}),
]


@pytest.mark.parametrize(("keys", "expect"), VALID, ids=[str(k) for k, _ in VALID])
def test_valid_keys(keys: dict[str, Any], expect: dict[str, Any]) -> None:
    nc = parse(conf(**keys))
    for attr, value in expect.items():
        assert getattr(nc, attr) == value, attr


INVALID = [
    ("vlan", 4095),
    ("vlan", -1),
    ("vlan", "100"),
    ("vlan", True),
    ("vlan", 1.5),
    ("vlanQoS", 8),
    ("vlanProto", "802.1x"),
    ("spoofchk", 1),
    ("link_state", "Enable"),  # sriov-cni compares case-sensitively and refuses it
    ("trust", True),
    ("link_state", "up"),
    ("min_tx_rate", -5),
    ("max_tx_rate", "fast"),
    ("mac", "01:00:00:00:00:01"),
    ("mac", "zz"),
    ("logLevel", 3),
    ("mtu", 67),
    ("mtu", 70000),
    ("deviceID", "../../etc/passwd"),
    ("deviceID", "0000:3b:02.1/../x"),
    ("deviceID", "0000:3b:02.1\n"),  # a regex `match` with `$` took the trailing newline
    ("pciBusID", "3b:02.1\n"),
    ("mac", "02:00:00:00:00:01\n"),
    ("pciBusID", "nope"),
    ("name", "../evil"),
    ("ipam", "host-local"),
    ("ipam", {"type": "../../bin/sh"}),
    ("podResourcesSocket", "relative.sock"),
    ("stateDir", "rel"),
    ("capabilities", {"mac": "yes"}),
    ("runtimeConfig", []),
    ("dns", {"nameservers": "1.1.1.1"}),
]


@pytest.mark.parametrize(("key", "value"), INVALID, ids=[f"{k}={v!r}" for k, v in INVALID])
def test_invalid_known_key_is_code_7_naming_key(key: str, value: Any) -> None:
    err = error(conf(**{key: value}))
    assert err.code == CniCode.INVALID_CONFIG
    assert key in err.msg


@pytest.mark.parametrize(
    ("keys", "named"),
    [
        ({"vlanQoS": 3}, "vlanQoS"),
        ({"vlan": 0, "vlanQoS": 3}, "vlanQoS"),
        ({"vlanProto": "802.1q"}, "vlanProto"),
        ({"vlan": 0, "vlanProto": "802.1ad"}, "vlanProto"),
        ({"min_tx_rate": 500, "max_tx_rate": 100}, "min_tx_rate"),
        ({"runtimeConfig": {"deviceID": "zz"}}, "runtimeConfig.deviceID"),
        ({"runtimeConfig": {"mac": "zz"}}, "runtimeConfig.mac"),
    ],
)
def test_cross_field_rules(keys: dict[str, Any], named: str) -> None:
    err = error(conf(**keys))
    assert err.code == CniCode.INVALID_CONFIG and named in err.msg


def test_missing_name_and_bad_version() -> None:
    obj = conf()
    del obj["name"]
    assert error(obj).code == CniCode.INVALID_CONFIG
    assert error(conf(cniVersion="9.9.9")).code == CniCode.INCOMPATIBLE_VERSION


def test_decode_failures_are_code_6() -> None:
    with pytest.raises(CniError) as ei:
        NetConf.parse(b"{not json", None)
    assert ei.value.code == CniCode.DECODING_FAILURE
    with pytest.raises(CniError) as ei:
        NetConf.parse(b"[1,2]", None)
    assert ei.value.code == CniCode.DECODING_FAILURE


def test_device_id_precedence_runtime_over_top_level_over_pcibusid() -> None:
    assert parse(conf(pciBusID="0000:01:00.2")).device_id == "0000:01:00.2"
    assert parse(conf(pciBusID="0000:01:00.2", deviceID="0000:01:00.3")).device_id == "0000:01:00.3"
    both = conf(
        pciBusID="0000:01:00.2", deviceID="0000:01:00.3", runtimeConfig={"deviceID": "01:00.4"}
    )
    assert parse(both).device_id == "0000:01:00.4"


def test_mac_precedence_key_then_cni_args_then_runtime_config() -> None:
    assert parse(conf(mac="02:00:00:00:00:01")).mac == "02:00:00:00:00:01"
    assert parse(conf(mac="02:00:00:00:00:01"), "MAC=02:00:00:00:00:02").mac == "02:00:00:00:00:02"
    rc = conf(mac="02:00:00:00:00:01", runtimeConfig={"mac": "02:00:00:00:00:03"})
    assert parse(rc, "MAC=02:00:00:00:00:02").mac == "02:00:00:00:00:03"
    err = error(conf(), "IgnoreUnknown=1;MAC=bogus")
    assert err.code == CniCode.INVALID_ENV and "CNI_ARGS" in err.msg


def test_fallback_block() -> None:
    fb = parse(
        conf(fallback={"type": "macvlan", "master": "eth0", "mode": "vepa", "vlan": 20})
    ).fallback
    assert (
        fb is not None and fb.type is FallbackType.MACVLAN and fb.master == "eth0" and fb.vlan == 20
    )
    assert parse(conf(fallback={"type": "ipvlan", "master": "eth0"})).fallback.mode == "l2"
    for bad, key in [
        ({"type": "bridge", "master": "eth0"}, "fallback.type"),
        ({"type": "macvlan"}, "fallback.master"),
        ({"type": "macvlan", "master": "../x"}, "fallback.master"),
        ({"type": "ipvlan", "master": "eth0", "mode": "bridge"}, "fallback.mode"),
        ({"type": "macvlan", "master": "eth0", "vlan": 0}, "fallback.vlan"),
        ({"type": "ipvlan", "master": "eth0", "mac": "02:00:00:00:00:01"}, "fallback.mac"),
    ]:
        err = error(conf(fallback=bad))
        assert err.code == CniCode.INVALID_CONFIG and key in err.msg, bad


def test_gc_attachments_accept_both_keys_and_prev_result() -> None:
    nc = parse(
        conf(
            cniVersion="1.1.0",
            **{
                "cni.dev/valid-attachments": [{"containerID": "a", "ifname": "net1"}],
                "cni.dev/attachments": [
                    {"containerID": "a", "ifname": "net1"},
                    {"containerID": "b", "ifname": "net2"},
                ],
            },
        )
    )
    assert [(a.container_id, a.ifname) for a in nc.valid_attachments] == [
        ("a", "net1"),
        ("b", "net2"),
    ]
    assert parse(conf()).valid_attachments is None
    prev = parse(
        conf(
            prevResult={"cniVersion": "0.4.0", "ips": [{"version": "4", "address": "10.0.0.2/24"}]}
        )
    )
    assert prev.prev_result.ips[0].address == "10.0.0.2/24"


def test_vf_settings_leave_unset_fields_untouched() -> None:
    s = parse(conf(vlan=10, trust="on")).vf_settings()
    assert (s.vlan, s.trust, s.spoofchk, s.mac, s.link_state) == (10, True, None, None, None)


def test_go_cased_keys_mean_what_sriov_cni_makes_of_them() -> None:
    nc = parse(conf(DeviceID="0000:3b:02.1", Vlan=100, VlanQoS=2, MAC="02:AA:BB:CC:DD:EE",
                    SpoofChk="on", Trust="off", Link_State="enable", Min_Tx_Rate=10,
                    LogLevel="debug"))
    assert (nc.device_id, nc.vlan, nc.vlan_qos, nc.mac) == ("0000:3b:02.1", 100, 2,
                                                            "02:aa:bb:cc:dd:ee")
    assert (nc.spoofchk, nc.trust, nc.link_state, nc.min_tx_rate, nc.log_level) == (
        True, False, LinkState.ENABLE, 10, "debug")
    assert nc.extra == {}
    assert any("DeviceID: accepted as 'deviceID'" in w for w in nc.warnings)


def test_repeated_keys_last_wins() -> None:
    raw = (b'{"cniVersion": "1.0.0", "name": "n", "type": "sriov", "vlan": 5, "Vlan": 7,'
           b' "vlan": 9, "mac": "02:00:00:00:00:01", "MAC": "02:00:00:00:00:02"}')
    nc = NetConf.parse(raw, None)
    assert nc.vlan == 9 and nc.mac == "02:00:00:00:00:02"
    assert any("vlan: given more than once" in w for w in nc.warnings)


def test_go_internal_fields_are_ignored() -> None:
    nc = parse(conf(MTU=9000, Master="ens1f0", VFID=3))
    assert nc.mtu is None and nc.extra == {}
    assert sum("set by sriov-cni itself" in w for w in nc.warnings) == 3
    assert parse(conf(Mtu=9000)).mtu == 9000  # only Go's exact spelling is the internal field


def test_runtime_config_mac_is_case_insensitive() -> None:
    nc = parse(conf(runtimeConfig={"MAC": "02:00:00:00:00:03"}))
    assert nc.mac == "02:00:00:00:00:03"


def test_an_error_does_not_echo_megabytes_of_input() -> None:
    """The error JSON and its log line name the key and show the start of the value only."""
    err = error(conf(vlan=10, vlanProto="x" * 100_000))
    assert err.code == CniCode.INVALID_CONFIG and "vlanProto" in err.msg
    assert len(err.msg) < 300 and "100002 characters" in err.msg
