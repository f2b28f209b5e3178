"""Regression tests for the bugs this suite found (no root; each names what it guards)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from cni.errors import CniError
from cni.netconf import NetConf
from cni.protocol import CmdArgs
from cni.skel import request_version
from cni.state import StateStore

ENV = {
    "CNI_COMMAND": "ADD",
    "CNI_CONTAINERID": "abc",
    "CNI_NETNS": "/var/run/netns/x",
    "CNI_IFNAME": "net1",
    "CNI_PATH": "/usr/lib/cni",
}
CONF = {"cniVersion": "1.1.0", "name": "net", "type": "sriov", "deviceID": "0000:3b:10.0"}


def _code(fn: object) -> int:
    with pytest.raises(CniError) as e:
        fn()  # type: ignore[operator]
    return e.value.code


@pytest.mark.parametrize("cid", ["9" * 300, "abc\n"])
def test_container_id_too_long_or_with_trailing_newline_is_code_4(cid: str) -> None:
    # was: ENAMETOOLONG from the state store -> code 999 with a traceback; "abc\n" was accepted
    err_code = _code(lambda: CmdArgs.from_env({**ENV, "CNI_CONTAINERID": cid}))
    assert err_code == 4


@pytest.mark.parametrize("name", ["x" * 300, "net\n"])
def test_network_name_too_long_or_with_trailing_newline_is_code_7(name: str) -> None:
    # was: host-local mkdir ENAMETOOLONG -> code 999; "net\n" made a directory with a newline
    assert _code(lambda: NetConf.parse(json.dumps({**CONF, "name": name}).encode())) == 7


@pytest.mark.parametrize(
    "key,value",
    [("mac", False), ("mac", 0), ("deviceID", 0), ("deviceID", []), ("pciBusID", False)],
)
def test_falsy_non_string_values_are_a_type_error_not_unset(key: str, value: object) -> None:
    # was: silently treated as "not set" ("mac": false attached the VF with its own MAC)
    conf = {**CONF, key: value}
    if key == "pciBusID":
        conf.pop("deviceID")
    assert _code(lambda: NetConf.parse(json.dumps(conf).encode())) == 7


@pytest.mark.parametrize("doc", [b"[" * 5000, b'{"a":' * 5000])
def test_deeply_nested_json_is_a_decode_error(doc: bytes) -> None:
    # was: RecursionError escaped skel.dispatch -> traceback to the runtime, no error JSON
    assert request_version(doc) == "1.1.0"
    assert _code(lambda: NetConf.parse(doc)) == 6


def test_state_dir_levels_are_all_0700(tmp_path: Path) -> None:
    # was: mkdir(parents=True) created the state root 0755 (only the leaf got 0700)
    store = StateStore(tmp_path / "var" / "state")
    with store.vf_lock("0000:3b:10.0"):
        pass
    for level in (store.root, *[p for p in store.root.rglob("*") if p.is_dir()]):
        assert stat.S_IMODE(level.stat().st_mode) == 0o700, level


def test_pool_config_nested_too_deeply_is_a_pool_config_error() -> None:
    # was: RecursionError killed the device plugin's config reload thread (pools never reloaded)
    from sriov.errors import PoolConfigError
    from sriov.pools import parse_pool_config

    with pytest.raises(PoolConfigError, match="nested too deeply"):
        parse_pool_config(b"[" * 5000)


def test_pool_config_empty_key_is_named() -> None:
    # was: field "" for an unknown empty key, so the error named nothing
    from sriov.pools import PoolConfigProblems, parse_pool_config

    with pytest.raises(PoolConfigProblems) as e:
        parse_pool_config(b'{"resourceList": [], "": 1}', strict=True)
    assert [p.field for p in e.value.problems] == ["''"]
    warnings = parse_pool_config(b'{"resourceList": [], "": 1}').warnings  # default: a warning
    assert [w.split(":")[0] for w in warnings] == ["''"]
