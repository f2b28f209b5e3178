"""Parsing the sriov-network-device-plugin config: accepted as upstream writes it, and
every mistake reported with the exact JSON path, all at once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sriov.errors import PoolConfigError
from sriov.pools import (
    DeviceType,
    PoolConfig,
    PoolConfigProblems,
    SelectorSet,
    VdpaType,
    load_pool_config,
    parse_pool_config,
)

REPO = Path(__file__).resolve().parents[2]


def one_pool(selectors: object = None, **extra: object) -> dict[str, Any]:
    pool: dict[str, Any] = {"resourceName": "net", **extra}
    pool["selectors"] = {} if selectors is None else selectors
    return {"resourceList": [pool]}


def problems_of(obj: object, *, strict: bool = False) -> dict[str, str]:
    with pytest.raises(PoolConfigProblems) as info:
        PoolConfig.parse(obj, strict=strict)
    return {p.field: p.reason for p in info.value.problems}


def warnings_of(obj: object) -> list[str]:
    """The config is accepted (as upstream accepts it); what we doubt comes as warnings."""
    return list(PoolConfig.parse(obj).warnings)


def test_upstream_style_config_parses() -> None:
    config = PoolConfig.parse({"resourceList": [
        {"resourceName": "intel_sriov_netdevice",
         "selectors": {"vendors": ["8086"], "devices": ["154c"], "drivers": ["iavf"],
                       "pfNames": ["ens1f0#0-3,5", "ens1f1"],
                       "rootDevices": ["0000:3b:00.0#1"], "pciAddresses": ["0000:3b:02.0"]}},
        {"resourceName": "mlnx_rdma", "resourcePrefix": "mellanox.com", "excludeTopology": True,
         "selectors": [{"isRdma": True, "linkTypes": ["infiniband"]}, {"needVhostNet": True}],
         "additionalInfo": {"*": {"k": "v"}, "0000:3b:02.1": {"k": "w"}}},
    ]})
    assert config.warnings == ()
    net, rdma = config.pools
    assert net.full_name == "intel.com/intel_sriov_netdevice"
    assert net.device_type is DeviceType.NET_DEVICE
    (sel,) = net.selectors
    assert sel.devices == ("154c",) and sel.pci_addresses == ("0000:3b:02.0",)
    assert [str(r) for r in sel.pf_names] == ["ens1f0#0-3,5", "ens1f1"]
    assert sel.pf_names[0].vf_indexes == frozenset({0, 1, 2, 3, 5})
    assert sel.root_devices[0].device == "0000:3b:00.0"
    assert rdma.full_name == "mellanox.com/mlnx_rdma" and rdma.exclude_topology
    assert rdma.is_rdma and rdma.need_vhost_net and len(rdma.selectors) == 2
    assert rdma.info_for("0000:3b:02.1") == {"k": "w"}
    assert rdma.info_for("0000:3b:02.2") == {"k": "v"}
    assert config.pool("mellanox.com/mlnx_rdma") is rdma


def test_default_prefix_comes_from_the_caller() -> None:
    config = PoolConfig.parse(one_pool(), default_prefix="example.org")
    assert config.pools[0].full_name == "example.org/net"
    assert config.with_default_prefix("nvidia.com").pools[0].full_name == "nvidia.com/net"


def test_empty_resource_list_is_an_empty_config() -> None:
    assert PoolConfig.parse({"resourceList": []}).pools == ()
    assert PoolConfig.parse({"resourceList": None}).pools == ()  # Go: a nil slice


@pytest.mark.parametrize(("key", "suggestion"), [
    ("vendor", "vendors"), ("pfName", "pfNames"), ("rootDevice", "rootDevices"),
    ("isRDMA2", "isRdma"), ("linktypes2", "linkTypes"),
], ids=["vendor", "pfName", "rootDevice", "isRDMA2", "linktypes2"])
def test_unknown_selector_key_warns_with_closest_and_is_an_error_when_strict(
        key: str, suggestion: str) -> None:
    config = PoolConfig.parse(one_pool({key: ["x"]}))
    assert config.warnings == (f"resourceList[0].selectors.{key}: unknown key, ignored (as "
                               f"upstream); did you mean {suggestion!r}?",)
    assert config.pools[0].selectors[0] == SelectorSet()  # ignored: the pool selects all
    problems = problems_of(one_pool({key: ["x"]}), strict=True)
    assert problems == {f"resourceList[0].selectors.{key}":
                        f"unknown key, ignored (as upstream); did you mean {suggestion!r}?"}


def test_unknown_keys_at_every_level() -> None:
    problems = problems_of({"resourceLists": []})
    assert problems == {"resourceList": "required"}
    problems = problems_of({"resourceLists": []}, strict=True)
    assert "did you mean 'resourceList'?" in problems["resourceLists"]
    warnings = warnings_of(one_pool(resourcename2="x"))
    assert len(warnings) == 1 and "resourceList[0].resourcename2: unknown key" in warnings[0]
    assert "did you mean 'resourceName'" in warnings[0]


def test_key_case_differences_are_accepted_with_a_warning() -> None:
    config = PoolConfig.parse(one_pool({"isrdma": True}, RESOURCEPREFIX="x.io"))
    assert config.pools[0].selectors[0].is_rdma
    assert config.pools[0].full_name == "x.io/net"
    assert any("isrdma" in w and "'isRdma'" in w for w in config.warnings)
    assert any("RESOURCEPREFIX" in w for w in config.warnings)


def test_go_field_spellings_the_operator_writes_are_silent() -> None:
    config = PoolConfig.parse(one_pool({"IsRdma": True, "NeedVhostNet": True},
                                       SelectorObj=None, SelectorObjs=None))
    (sel,) = config.pools[0].selectors
    assert sel.is_rdma and sel.need_vhost_net and config.warnings == ()


def test_selector_objs_must_be_a_list_or_null_as_upstream() -> None:
    assert PoolConfig.parse(one_pool(SelectorObjs=[{"x": 1}])).warnings == ()
    problems = problems_of(one_pool(SelectorObjs={"x": 1}))
    assert "expected a list or null" in problems["resourceList[0].SelectorObjs"]


def test_repeated_keys_last_wins_as_go() -> None:
    config = parse_pool_config('{"resourceList": [{"resourceName": "a", "resourceName": "b", '
                               '"selectors": {"isRdma": true, "IsRdma": false}}]}')
    assert config.pools[0].resource_name == "b"
    assert config.pools[0].selectors[0].is_rdma is False
    assert any("'resourceName' is given more than once" in w for w in config.warnings)
    with pytest.raises(PoolConfigProblems, match="given more than once"):
        parse_pool_config('{"resourceList": [], "resourceList": []}', strict=True)


def test_selector_key_of_another_device_type_is_ignored_as_upstream() -> None:
    warnings = warnings_of(one_pool({"auxTypes": ["sf"]}))
    assert "not a selector for deviceType netDevice" in warnings[0]
    config = PoolConfig.parse(one_pool({"pfNames": ["p0"]}, deviceType="accelerator"))
    assert config.pools[0].selectors[0] == SelectorSet()
    assert "resourceList[0].selectors.pfNames" in config.warnings[0]
    problems = problems_of(one_pool({"auxTypes": ["sf"]}), strict=True)
    assert "resourceList[0].selectors.auxTypes" in problems


def test_go_empty_values_mean_unset() -> None:
    config = PoolConfig.parse(one_pool({"vendors": None, "isRdma": None, "vdpaType": ""},
                                       deviceType="", resourcePrefix="", excludeTopology=None,
                                       additionalInfo=None))
    pool = config.pools[0]
    assert pool.full_name == "intel.com/net" and pool.device_type is DeviceType.NET_DEVICE
    assert pool.selectors == (SelectorSet(),) and config.warnings == ()


def test_empty_selector_list_drops_the_pool_as_upstream() -> None:
    config = PoolConfig.parse({"resourceList": [
        {"resourceName": "gone", "selectors": []}, {"resourceName": "kept", "selectors": {}}]})
    assert [p.resource_name for p in config.pools] == ["kept"]
    assert "resourceList[0].selectors: is an empty list, so the pool is dropped" \
        in config.warnings[0]
    assert "is an empty list" in problems_of(one_pool([]), strict=True)["resourceList[0].selectors"]


def test_pf_ranges_mean_what_upstream_selects() -> None:
    config = PoolConfig.parse(one_pool({"pfNames": ["a#0,x,5", "b#5-3,7", "c#1#2", "d#",
                                                    "e#0-300"]}))
    refs = {r.device: r for r in config.pools[0].selectors[0].pf_names}
    assert refs["a"].vf_indexes == frozenset({0})  # upstream stops at the malformed 'x'
    assert refs["b"].vf_indexes == frozenset({7})  # a reversed range is empty, not an error
    assert refs["c"].vf_indexes == frozenset()     # two '#': the entry selects nothing
    assert refs["d"].vf_indexes == frozenset()
    assert refs["e"].vf_indexes == frozenset(range(301))  # no 255 limit upstream
    assert len(config.warnings) == 4
    assert "'a#0,x,5': VF index range: 'x' is not a VF index" in config.warnings[0]


# (selectors, field, message): upstream accepts these (the value just never matches, or
# the entry selects nothing), so they are warnings by default and errors with strict=True
DOUBTFUL_VALUES = [
    ({"vendors": ["808"]}, "selectors.vendors[0]", "expected 4 hex digits"),
    ({"vendors": ["0x8086"]}, "selectors.vendors[0]", "never matches; did you mean '8086'?"),
    ({"devices": ["154C"]}, "selectors.devices[0]", "never matches; did you mean '154c'?"),
    ({"devices": ["zzzz"]}, "selectors.devices[0]", "expected 4 hex digits"),
    ({"drivers": ["i a"]}, "selectors.drivers[0]", "not a driver name"),
    ({"pciAddresses": ["3b:02"]}, "selectors.pciAddresses[0]", "PCI address"),
    ({"pciAddresses": ["3b:02.0"]}, "selectors.pciAddresses[0]", "did you mean '0000:3b:02.0'"),
    ({"pfNames": ["ok", "ens1f0#3-1"]}, "selectors.pfNames[1]", "runs backwards"),
    ({"pfNames": ["a/b"]}, "selectors.pfNames[0]", "interface name"),
    ({"pfNames": ["x" * 16]}, "selectors.pfNames[0]", "longer than 15 bytes"),
    ({"rootDevices": ["0000:3b:00.0#a"]}, "selectors.rootDevices[0]", "'a' is not a VF index"),
    ({"rootDevices": ["ens1f0"]}, "selectors.rootDevices[0]", "PCI address"),
    ({"rootDevices": ["3b:00.0"]}, "selectors.rootDevices[0]", "did you mean '0000:3b:00.0'"),
    ({"linkTypes": ["eth"]}, "selectors.linkTypes[0]", "expected one of ether, infiniband"),
    ({"acpiIndexes": ["x1"]}, "selectors.acpiIndexes[0]", "decimal ACPI index"),
    ({"pKeys": ["0xfffff"]}, "selectors.pKeys[0]", "16-bit hex"),
    ({"ddpProfiles": [" "]}, "selectors.ddpProfiles[0]", "is empty"),
    ([], "selectors", "is an empty list"),
    ({"vdpaType": "vdpa"}, "selectors.vdpaType", "'vdpa' is not a vDPA type (vhost, virtio)"),
]


@pytest.mark.parametrize(("selectors", "field", "message"), DOUBTFUL_VALUES,
                         ids=[f"{f}:{m[:20]}" for _, f, m in DOUBTFUL_VALUES])
def test_doubtful_values_warn_and_are_errors_when_strict(selectors: object, field: str,
                                                         message: str) -> None:
    warnings = warnings_of(one_pool(selectors))
    assert any(w.startswith(f"resourceList[0].{field}: ") and message in w for w in warnings), \
        warnings
    problems = problems_of(one_pool(selectors), strict=True)
    assert message in problems[f"resourceList[0].{field}"], problems


def test_values_that_never_match_upstream_never_match_here() -> None:
    from tests.unit.test_selectors import VF
    config = PoolConfig.parse(one_pool({"vdpaType": "vdpa"}))
    assert config.pools[0].selectors[0].vdpa_type == "vdpa"
    assert config.pools[0].match(VF) == (False, "vdpaType: 'vdpa' is not vhost or virtio, "
                                                "selects nothing")
    config = PoolConfig.parse(one_pool({"devices": ["154C"]}))
    assert config.pools[0].match(VF)[0] is False
    config = PoolConfig.parse(one_pool({"devices": ["154c"], "pfNames": ["ENS1F0#5"]}))
    assert config.pools[0].match(VF)[0] is True  # pfNames compare case-insensitively


# upstream rejects these (the whole file, the pool, or the plugin exits): errors in both modes
BAD_FIELDS = [
    ({"vendors": "8086"}, "selectors.vendors", "expected a list of strings, got a string"),
    ({"vendors": [8086]}, "selectors.vendors[0]", "expected a string, got a number"),
    ({"isRdma": "true"}, "selectors.isRdma", "expected true or false, got a string"),
    ({"needVhostNet": 1}, "selectors.needVhostNet", "expected true or false, got a number"),
    ({"vdpaType": 1}, "selectors.vdpaType", "expected a string, got a number"),
    ({"isRdma": True, "vdpaType": "vhost"}, "selectors.vdpaType", "cannot be combined with isRdma"),
    ({"isRdma": True, "vdpaType": "vdpa"}, "selectors.vdpaType", "cannot be combined with isRdma"),
    ("pfNames", "selectors", "expected a selector object or a list of them, got a string"),
    ([{}, 3], "selectors[1]", "expected a selector object, got a number"),
    (None, "selectors", "null or missing crashes upstream"),
]


@pytest.mark.parametrize(("selectors", "field", "message"), [
    ({}, "selectors.auxTypes", "required for deviceType auxNetDevice"),
    ({"auxTypes": ["sf", "vf"]}, "selectors.auxTypes[1]", "only 'sf' is supported"),
], ids=["missing", "not-sf"])
def test_aux_types_as_upstream_validates_them(selectors: object, field: str,
                                              message: str) -> None:
    pool = one_pool(selectors, deviceType="auxNetDevice")
    for strict in (False, True):
        assert message in problems_of(pool, strict=strict)[f"resourceList[0].{field}"]


@pytest.mark.parametrize(("selectors", "field", "message"), BAD_FIELDS,
                         ids=[f"{f}:{m[:20]}" for _, f, m in BAD_FIELDS])
def test_bad_selector_values_name_the_field(selectors: object, field: str, message: str) -> None:
    pool = {"resourceList": [{"resourceName": "net", "selectors": selectors}]}
    for strict in (False, True):
        problems = problems_of(pool, strict=strict)
        assert message in problems[f"resourceList[0].{field}"], problems


BAD_POOLS = [
    ({"selectors": {}}, "resourceName", "required"),
    ({"resourceName": 7, "selectors": {}}, "resourceName", "expected a string, got a number"),
    ({"resourceName": "a.b", "selectors": {}}, "resourceName", "only letters, digits"),
    ({"resourceName": "_a", "selectors": {}}, "resourceName", "start and end with a letter"),
    ({"resourceName": "a" * 64, "selectors": {}}, "resourceName", "at most 63"),
    ({"resourceName": "a"}, "selectors", "required"),
    ({"resourceName": "a", "selectors": {}, "resourcePrefix": 5}, "resourcePrefix",
     "lower-case DNS domain"),
    ({"resourceName": "a", "selectors": {}, "resourcePrefix": "Intel.COM"}, "resourcePrefix",
     "lower-case DNS domain"),
    ({"resourceName": "a", "selectors": {}, "deviceType": "netdevice"}, "deviceType",
     "expected one of netDevice, accelerator, auxNetDevice"),
    ({"resourceName": "a", "selectors": {}, "excludeTopology": "yes"}, "excludeTopology",
     "expected true or false"),
    ({"resourceName": "a", "selectors": {}, "additionalInfo": ["x"]},
     "additionalInfo", "expected an object"),
    ({"resourceName": "a", "selectors": {}, "additionalInfo": {"*": {"k": 1}}},
     "additionalInfo.*.k", "expected a string, got a number"),
]


@pytest.mark.parametrize(("pool", "field", "message"), BAD_POOLS,
                         ids=[f"{f}:{m[:20]}" for _, f, m in BAD_POOLS])
def test_bad_pool_values_name_the_field(pool: dict[str, Any], field: str, message: str) -> None:
    problems = problems_of({"resourceList": [pool]})
    assert message in problems[f"resourceList[0].{field}"], problems


def test_duplicate_full_names_rejected_even_via_default_prefix() -> None:
    problems = problems_of({"resourceList": [
        {"resourceName": "a", "selectors": {}},
        {"resourceName": "a", "resourcePrefix": "intel.com", "selectors": {}},
        {"resourceName": "a", "resourcePrefix": "other.io", "selectors": {}},
    ]})
    assert problems == {"resourceList[1].resourceName":
                        "'intel.com/a' is already defined by resourceList[0]"}


def test_every_problem_is_reported_in_one_error() -> None:
    with pytest.raises(PoolConfigProblems) as info:
        PoolConfig.parse(strict=True, obj={"resourceList": [
            {"resourceName": "a", "selectors": {"vendor": ["8086"], "pfNames": ["p#9-1"]}},
            {"resourceName": "b.c", "selectors": [{"isRdma": 1}]},
            "nope",
        ]})
    error = info.value
    assert isinstance(error, PoolConfigError)
    assert [p.field for p in error.problems] == [
        "resourceList[0].selectors.vendor", "resourceList[0].selectors.pfNames[0]",
        "resourceList[1].resourceName", "resourceList[1].selectors[0].isRdma", "resourceList[2]"]
    text = str(error).splitlines()
    assert text[0] == "5 problems in the pool config:"
    assert text[2] == "resourceList[0].selectors.pfNames[0]: 'p#9-1': VF index range: " \
                      "'9-1' runs backwards"


def test_vdpa_and_device_types_are_enums() -> None:
    config = PoolConfig.parse({"resourceList": [
        {"resourceName": "v", "selectors": {"vdpaType": "virtio"}},
        {"resourceName": "sf", "deviceType": "auxNetDevice", "selectors": [{"auxTypes": ["sf"]}]},
    ]})
    assert config.pools[0].selectors[0].vdpa_type is VdpaType.VIRTIO
    assert config.pools[1].device_type is DeviceType.AUX_NET_DEVICE


@pytest.mark.parametrize(("text", "message"), [
    ("{", "not valid JSON: line 1 column 2"),
    (b"\xff\xfe", "not"),
    ("[]", "must be a JSON object with 'resourceList', got a list"),
], ids=["truncated", "binary", "list"])
def test_unparseable_text(text: str | bytes, message: str) -> None:
    with pytest.raises(PoolConfigError, match=message):
        parse_pool_config(text)


def test_load_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.json"
    with pytest.raises(PoolConfigError, match="cannot read") as info:
        load_pool_config(missing)
    assert info.value.field == str(missing)
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(PoolConfigError, match="not valid JSON") as info:
        load_pool_config(broken)
    assert info.value.field == str(broken)


CONFIG_FILES = sorted((REPO / "configs" / "pools").glob("*.json"))


@pytest.mark.parametrize("path", CONFIG_FILES, ids=[p.name for p in CONFIG_FILES])
def test_shipped_example_configs_parse(path: Path) -> None:
    config = load_pool_config(path)
    assert config.pools and not config.warnings
    assert json.loads(path.read_text())["resourceList"]


def test_example_configs_exist() -> None:
    names = {p.name for p in CONFIG_FILES}
    assert {"netdevice.json", "dpdk.json", "demo.json", "upstream-example.json"} <= names
