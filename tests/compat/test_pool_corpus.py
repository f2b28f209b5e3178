"""Pool configs in the shapes real clusters use, each with the pools it must produce.

Every ``corpus/pools/<case>/`` holds a ``config.json`` (written by us in the shape that
sriov-network-operator renders or upstream documents) and an ``expect.json``:

- ``pools``: every pool's full name -> the VF addresses it gets on the node of
  :mod:`tests.compat.host` (what upstream's device plugin would advertise);
- ``vhostNet``, ``info``, ``noTopology``: per-device vhost-net, additionalInfo, and pools
  without NUMA; ``warnings``: substrings of the warnings we must give (``[]``: none);
- ``error``: upstream rejects the config (or crashes), so do we, in every mode;
- ``strictError``: what ``--strict-config`` refuses (absent: strict accepts it too).

The same file is read by the three consumers that share one parser: ``sriovctl pools``'
:func:`sriov.pools.select`, the device plugin's scanner, and the CNI's pool guard.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cni.errors import CniError
from cni.pool_guard import PoolGuard
from deviceplugin.scanner import ConfigFile, HostScanner
from sriov.errors import PoolConfigError
from sriov.pools import PoolConfig, load_pool_config, select
from sriov.sysfs import SysfsReader
from sriov.types import Inventory
from tests.compat.host import build_node

CORPUS = Path(__file__).parent / "corpus" / "pools"
CASES = sorted(p.name for p in CORPUS.iterdir() if p.is_dir())


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("compat-node")
    build_node(root)
    return root


def _case(name: str) -> tuple[Path, dict[str, Any]]:
    return CORPUS / name / "config.json", json.loads((CORPUS / name / "expect.json").read_text())


def _load(path: Path, expect: dict[str, Any], *, strict: bool = False) -> PoolConfig:
    return load_pool_config(path, default_prefix=expect.get("resourcePrefix", "intel.com"),
                            strict=strict)


def _assert_warnings(warnings: tuple[str, ...], expected: list[str]) -> None:
    if not expected:
        assert warnings == (), warnings
    for text in expected:
        assert any(text in w for w in warnings), (text, warnings)


def test_the_corpus_is_not_empty() -> None:
    assert len(CASES) >= 10


@pytest.mark.parametrize("case", CASES)
def test_pool_config_case(case: str, node: Path) -> None:
    path, expect = _case(case)
    if "error" in expect:
        for strict in (False, True):
            with pytest.raises(PoolConfigError) as info:
                _load(path, expect, strict=strict)
            for text in expect["error"]:
                assert text in str(info.value), (text, str(info.value))
        return
    config = _load(path, expect)
    inventory = SysfsReader(node).inventory()
    selection = select(config, inventory)
    assert {name: [vf.address for vf in vfs] for name, vfs in selection.pools.items()} \
        == expect["pools"]
    _assert_warnings(config.warnings, expect["warnings"])
    if "vhostNet" in expect:
        assert sorted(selection.vhost_net) == expect["vhostNet"]
    for address, info in expect.get("info", {}).items():
        assert config.pool(selection.claimed_by[address]).info_for(address) == info  # type: ignore[union-attr]
    if "noTopology" in expect:
        assert [p.full_name for p in config.pools if p.exclude_topology] == expect["noTopology"]
    if "strictError" in expect:
        with pytest.raises(PoolConfigError) as info_:
            _load(path, expect, strict=True)
        for text in expect["strictError"]:
            assert text in str(info_.value), (text, str(info_.value))
    elif not expect["warnings"]:
        assert _load(path, expect, strict=True) == config


@pytest.mark.parametrize("case", CASES)
def test_device_plugin_scanner_advertises_the_same(case: str, node: Path) -> None:
    path, expect = _case(case)
    config = ConfigFile(path, expect.get("resourcePrefix", "intel.com"))
    if "error" in expect:
        with pytest.raises(PoolConfigError):
            config.load_initial()
        return
    config.load_initial()
    reader = SysfsReader(node)
    states = HostScanner(config, reader.inventory, lambda _: True)()
    advertised = {name: [d.id for d in s.devices] for name, s in states.items()}
    assert advertised == expect["pools"]
    vhost = sorted(d.id for s in states.values() for d in s.devices if d.need_vhost_net)
    assert vhost == expect.get("vhostNet", vhost)
    for name in expect.get("noTopology", []):
        assert all(d.numa_node is None for d in states[name].devices)


@pytest.mark.parametrize("case", CASES)
def test_cni_pool_guard_agrees(case: str, node: Path) -> None:
    path, expect = _case(case)
    reader = SysfsReader(node)
    guard = PoolGuard(path, reader.vf)
    inventory: Inventory = reader.inventory()
    pooled = {a for vfs in expect.get("pools", {}).values() for a in vfs}
    for vf in inventory.vfs:
        if "error" in expect:  # upstream rejects it: the guard fails closed (code 50)
            with pytest.raises(CniError) as info:
                guard.check(vf.address)
            assert info.value.code == 50
        elif vf.address in pooled:
            guard.check(vf.address)
        else:
            with pytest.raises(CniError) as info:
                guard.check(vf.address)
            assert info.value.code == 100
