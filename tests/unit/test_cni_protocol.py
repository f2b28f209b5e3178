"""CNI env parsing, version gating and Result conversion for every spec version."""

from __future__ import annotations

import pytest

from cni.errors import CniCode, CniError
from cni.protocol import (
    DNS,
    SUPPORTED_VERSIONS,
    CmdArgs,
    Command,
    Interface,
    IPConfig,
    Result,
    Route,
    parse_cni_args,
    require_supported,
    require_version_for,
    version_answer,
)

BASE = {
    "CNI_CONTAINERID": "abc123",
    "CNI_NETNS": "/run/netns/x",
    "CNI_IFNAME": "net1",
    "CNI_PATH": "/opt/cni/bin:/usr/lib/cni",
}


def env(cmd: str, **over: str) -> dict[str, str]:
    e = {"CNI_COMMAND": cmd, **BASE, **over}
    return {k: v for k, v in e.items() if v is not None}


def code_of(fn, *a) -> int:
    with pytest.raises(CniError) as ei:
        fn(*a)
    return ei.value.code


@pytest.mark.parametrize("cmd", ["ADD", "DEL", "CHECK", "GC", "STATUS", "VERSION"])
def test_full_env_parses_for_every_command(cmd: str) -> None:
    args = CmdArgs.from_env(env(cmd))
    assert args.command == Command(cmd)


@pytest.mark.parametrize(
    ("cmd", "missing", "required"),
    [
        ("ADD", "CNI_NETNS", True),
        ("CHECK", "CNI_NETNS", True),
        ("DEL", "CNI_NETNS", False),
        ("ADD", "CNI_CONTAINERID", True),
        ("DEL", "CNI_CONTAINERID", True),
        ("DEL", "CNI_IFNAME", True),
        ("ADD", "CNI_PATH", True),
        ("GC", "CNI_CONTAINERID", False),
        ("GC", "CNI_IFNAME", False),
        ("GC", "CNI_NETNS", False),
        ("GC", "CNI_PATH", True),
        ("STATUS", "CNI_NETNS", False),
        ("STATUS", "CNI_PATH", True),
        ("VERSION", "CNI_PATH", False),
        ("VERSION", "CNI_CONTAINERID", False),
    ],
)
def test_per_command_required_env(cmd: str, missing: str, required: bool) -> None:
    e = env(cmd)
    del e[missing]
    if required:
        with pytest.raises(CniError) as ei:
            CmdArgs.from_env(e)
        assert ei.value.code == CniCode.INVALID_ENV
        assert missing in ei.value.msg
    else:
        CmdArgs.from_env(e)


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("CNI_CONTAINERID", "../../etc"),
        ("CNI_CONTAINERID", "-abc"),
        ("CNI_CONTAINERID", "a b"),
        ("CNI_IFNAME", "../x"),
        ("CNI_IFNAME", "a" * 16),
        ("CNI_IFNAME", "eth:0"),
        ("CNI_IFNAME", ".."),
        ("CNI_IFNAME", "eth\udcff"),  # invalid UTF-8 bytes, decoded with surrogateescape
        ("CNI_CONTAINERID", "abc\n"),
        ("CNI_ARGS", "IgnoreUnknown=1;novalue"),
        ("CNI_ARGS", "A=b=c"),
        ("CNI_COMMAND", "FROB"),
    ],
)
def test_bad_env_values_are_code_4_naming_the_variable(var: str, value: str) -> None:
    with pytest.raises(CniError) as ei:
        CmdArgs.from_env(env("ADD", **{var: value}))
    assert ei.value.code == CniCode.INVALID_ENV
    assert var in ei.value.msg


def test_cni_args_tolerates_unknown_keys() -> None:
    args = CmdArgs.from_env(
        env("ADD", CNI_ARGS="IgnoreUnknown=true;K8S_POD_NAME=p;FOO=bar;MAC=02:00:00:00:00:01")
    )
    assert args.arg("K8S_POD_NAME") == "p"
    assert args.arg("MAC") == "02:00:00:00:00:01"
    assert args.arg("NOPE") is None
    assert parse_cni_args("") == ()


def test_version_gating() -> None:
    assert code_of(require_version_for, Command.CHECK, "0.3.1") == CniCode.INCOMPATIBLE_VERSION
    assert code_of(require_version_for, Command.GC, "1.0.0") == CniCode.INCOMPATIBLE_VERSION
    assert code_of(require_version_for, Command.STATUS, "1.0.0") == CniCode.INCOMPATIBLE_VERSION
    require_version_for(Command.CHECK, "0.4.0")
    require_version_for(Command.GC, "1.1.0")
    require_version_for(Command.ADD, "0.1.0")
    assert code_of(require_supported, "2.0.0") == CniCode.INCOMPATIBLE_VERSION
    assert code_of(require_supported, "banana") == CniCode.INCOMPATIBLE_VERSION
    assert require_supported("") == "0.1.0"


def test_version_answer_echoes_request() -> None:
    assert version_answer("0.4.0") == {
        "cniVersion": "0.4.0",
        "supportedVersions": list(SUPPORTED_VERSIONS),
    }
    assert version_answer(None)["cniVersion"] == "1.1.0"


FULL = Result(
    interfaces=(
        Interface(
            name="net1",
            mac="02:00:00:00:00:01",
            mtu=1500,
            sandbox="/run/netns/x",
            pci_id="0000:3b:02.0",
        ),
    ),
    ips=(
        IPConfig(address="10.1.0.5/24", gateway="10.1.0.1", interface=0),
        IPConfig(address="fd00::5/64", gateway="fd00::1", interface=0),
    ),
    routes=(
        Route(dst="0.0.0.0/0", gw="10.1.0.1", mtu=1400, priority=10, table=100, scope=0),
        Route(dst="::/0"),
    ),
    dns=DNS(nameservers=("10.1.0.1",), search=("svc",)),
)

GOLDEN = {
    "1.1.0": {
        "cniVersion": "1.1.0",
        "interfaces": [
            {
                "name": "net1",
                "mac": "02:00:00:00:00:01",
                "mtu": 1500,
                "sandbox": "/run/netns/x",
                "pciID": "0000:3b:02.0",
            }
        ],
        "ips": [
            {"address": "10.1.0.5/24", "gateway": "10.1.0.1", "interface": 0},
            {"address": "fd00::5/64", "gateway": "fd00::1", "interface": 0},
        ],
        "routes": [
            {
                "dst": "0.0.0.0/0",
                "gw": "10.1.0.1",
                "mtu": 1400,
                "priority": 10,
                "table": 100,
                "scope": 0,
            },
            {"dst": "::/0"},
        ],
        "dns": {"nameservers": ["10.1.0.1"], "search": ["svc"]},
    },
    "0.4.0": {
        "cniVersion": "0.4.0",
        "interfaces": [{"name": "net1", "mac": "02:00:00:00:00:01", "sandbox": "/run/netns/x"}],
        "ips": [
            {"version": "4", "address": "10.1.0.5/24", "gateway": "10.1.0.1", "interface": 0},
            {"version": "6", "address": "fd00::5/64", "gateway": "fd00::1", "interface": 0},
        ],
        "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.0.1"}, {"dst": "::/0"}],
        "dns": {"nameservers": ["10.1.0.1"], "search": ["svc"]},
    },
    "0.2.0": {
        "cniVersion": "0.2.0",
        "ip4": {
            "ip": "10.1.0.5/24",
            "gateway": "10.1.0.1",
            "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.0.1"}],
        },
        "ip6": {"ip": "fd00::5/64", "gateway": "fd00::1", "routes": [{"dst": "::/0"}]},
        "dns": {"nameservers": ["10.1.0.1"], "search": ["svc"]},
    },
}
GOLDEN["1.0.0"] = {**GOLDEN["1.1.0"], "cniVersion": "1.0.0"}
GOLDEN["0.3.0"] = {**GOLDEN["0.4.0"], "cniVersion": "0.3.0"}
GOLDEN["0.3.1"] = {**GOLDEN["0.4.0"], "cniVersion": "0.3.1"}
GOLDEN["0.1.0"] = {**GOLDEN["0.2.0"], "cniVersion": "0.1.0"}


@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
def test_result_golden_conversion(version: str) -> None:
    assert FULL.to_dict(version) == GOLDEN[version]


@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
def test_result_round_trips_through_every_shape(version: str) -> None:
    parsed = Result.from_json(GOLDEN[version])
    assert parsed.to_dict(version) == GOLDEN[version]
    assert [ip.address for ip in parsed.ips] == ["10.1.0.5/24", "fd00::5/64"]


@pytest.mark.parametrize("version", ["0.1.0", "0.2.0"])
def test_legacy_conversion_fails_without_ip(version: str) -> None:
    with pytest.raises(CniError):
        Result(interfaces=(Interface(name="net1"),)).to_dict(version)


def test_from_json_rejects_garbage_with_code_6() -> None:
    assert code_of(Result.from_json, {"cniVersion": "1.0.0", "ips": [{"address": "nope"}]}) == 6
    assert code_of(Result.from_json, ["not", "an", "object"]) == 6


@pytest.mark.parametrize(
    "value",
    [
        "K8S_POD_NAME=p",  # upstream LoadArgs: "ARGS: unknown args" without IgnoreUnknown
        "IgnoreUnknown=0;K8S_POD_NAME=p",
        "IgnoreUnknown=yes;MAC=02:00:00:00:00:01",  # not a Go UnmarshallableBool
        "MAC=02:00:00:00:00:01;",  # an empty pair is malformed to Go too
        "mac=02:00:00:00:00:01",  # Go's FieldByName is case-sensitive: unknown
    ],
)
def test_add_parses_cni_args_as_the_go_plugins_do(value: str) -> None:
    with pytest.raises(CniError) as ei:
        CmdArgs.from_env(env("ADD", CNI_ARGS=value))
    assert ei.value.code == CniCode.INVALID_ENV and "CNI_ARGS" in ei.value.msg


@pytest.mark.parametrize(
    "value",
    [
        "IgnoreUnknown=1;K8S_POD_NAME=p;IP=10.0.0.2",
        "IgnoreUnknown=TRUE;X=y",
        "MAC=02:00:00:00:00:01",
    ],
)
def test_add_accepts_what_the_go_plugins_accept(value: str) -> None:
    assert CmdArgs.from_env(env("ADD", CNI_ARGS=value)).args


@pytest.mark.parametrize("command", ["DEL", "CHECK"])
def test_other_verbs_never_fail_on_cni_args(command: str) -> None:
    """The Go plugins parse CNI_ARGS on ADD only: nothing in it may fail a DEL."""
    args = CmdArgs.from_env(env(command, CNI_ARGS="K8S_POD_NAME=p;novalue;A=b=c;"))
    assert args.arg("K8S_POD_NAME") == "p"
