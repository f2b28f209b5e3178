"""ddpProfiles: ddptool's answer, read only when a pool selects by it."""

from __future__ import annotations

import json
import os
from pathlib import Path

from deviceplugin.scanner import ConfigFile, HostScanner
from sriov.ddp import DdpTool, parse_ddptool, with_ddp_profiles
from sriov.emulate.tree import PfSpec, SysfsTreeBuilder
from sriov.pools import PoolConfig, select
from sriov.sysfs import SysfsReader

PF = "0000:3b:00.0"
ANSWER = {"DDPInventory": {"device": "1572", "address": PF, "name": "ens1f0",
                           "display": "Intel(R) Ethernet Controller X710",
                           "DDPpackage": {"track_id": "80000008", "version": "1.0.4.0",
                                          "name": "GTPv1-C/U IPv4/IPv6 payload"}}}


def fake_ddptool(tmp_path: Path, body: str) -> str:
    """A stand-in for Intel's ddptool (this machine has no 700-series NIC)."""
    path = tmp_path / "bin" / "ddptool"
    path.parent.mkdir(exist_ok=True)
    path.write_text("#!/bin/sh\n" + body + "\n")
    os.chmod(path, 0o755)
    return str(path)


def test_parse_ddptool_output() -> None:
    assert parse_ddptool(json.dumps(ANSWER).encode()) == "GTPv1-C/U IPv4/IPv6 payload"
    assert parse_ddptool(b'{"DDPInventory": {"DDPpackage": {"name": ""}}}') is None
    assert parse_ddptool(b"not json") is None


def test_ddptool_argv_exit_code_and_timeout(tmp_path: Path) -> None:
    ok = DdpTool(fake_ddptool(tmp_path, f"[ \"$*\" = '-l -a -j -s {PF}' ] || exit 3\n"
                              f"echo '{json.dumps(ANSWER)}'"))
    assert ok(PF) == "GTPv1-C/U IPv4/IPv6 payload"
    assert DdpTool(fake_ddptool(tmp_path, "exit 8"))(PF) is None  # no profile loaded
    assert DdpTool(fake_ddptool(tmp_path, "sleep 5"), timeout_s=0.2)(PF) is None
    assert DdpTool.find(path=str(tmp_path / "bin")) is not None
    assert DdpTool.find(path=str(tmp_path / "nothing")) is None


def test_ddp_selector_matches_the_loaded_profile(tmp_path: Path) -> None:
    tree = SysfsTreeBuilder(tmp_path / "host")
    built = tree.add_pf(PfSpec(address=PF, ifname="ens1f0", num_vfs=2,
                               vf_ifnames=("v0", "v1")))
    profiles = {built.vf_addresses[0]: "GTP", built.vf_addresses[1]: None}
    inv = with_ddp_profiles(SysfsReader(tmp_path / "host").inventory(), profiles.get)
    sel = select(PoolConfig.parse({"resourceList": [
        {"resourceName": "gtp", "selectors": [{"ddpProfiles": ["GTP"]}]}]}), inv)
    assert [d.id for d in sel.pools["intel.com/gtp"]] == [built.vf_addresses[0]]


def test_scanner_runs_ddptool_only_for_ddp_pools(tmp_path: Path) -> None:
    tree = SysfsTreeBuilder(tmp_path / "host")
    tree.add_pf(PfSpec(address=PF, ifname="ens1f0", num_vfs=2, vf_ifnames=("v0", "v1")))
    calls: list[str] = []

    def probe(pci: str) -> str | None:
        calls.append(pci)
        return "GTP"

    for pools, expected_calls in (([{"resourceName": "a", "selectors": [{}]}], 0),
                                  ([{"resourceName": "b",
                                     "selectors": [{"ddpProfiles": ["GTP"]}]}], 2)):
        calls.clear()
        (tmp_path / "c.json").write_text(json.dumps({"resourceList": pools}))
        cfg = ConfigFile(tmp_path / "c.json", "intel.com")
        cfg.load_initial()
        states = HostScanner(cfg, SysfsReader(tmp_path / "host").inventory, lambda _: True,
                             ddp=probe)()
        assert len(calls) == expected_calls
        assert all(len(s.devices) == 2 for s in states.values())
