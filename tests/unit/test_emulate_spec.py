"""EmulationSpec validation, naming and the sriov-emu.json round trip (pure)."""

from __future__ import annotations

import json

import pytest

from sriov import validate
from sriov.emulate import spec as emu
from sriov.errors import InvalidInputError
from sriov.types import IfName, MacAddress, PciAddress


def test_defaults_name_pfs_and_vfs_like_a_real_host() -> None:
    s = emu.EmulationSpec()
    assert (s.pfs, s.vfs, s.profile) == (2, 4, emu.Profile.X710)
    assert emu.pf_netdev(s, 1) == "sriovpf1"
    assert emu.vf_netdev(s, 0, 3) == "sriovpf0v3"
    assert emu.vf_wire(s, 1, 2) == "sriovw1v2"
    assert emu.pf_wire(s, 0) == "sriovw0p"


def test_numa_nodes_alternate_and_zero_means_no_topology() -> None:
    s = emu.EmulationSpec(pfs=4, numa_nodes=2)
    assert [s.numa_node(p) for p in range(4)] == [0, 1, 0, 1]
    assert emu.EmulationSpec(numa_nodes=0).numa_node(1) is None


def test_vfio_takes_the_last_vfs_of_each_pf() -> None:
    s = emu.EmulationSpec(vfs=4, vfio=1)
    assert [s.starts_on_vfio(v) for v in range(4)] == [False, False, False, True]


def test_macs_are_unique_unicast_locally_administered_and_deterministic() -> None:
    s = emu.EmulationSpec(pfs=2, vfs=300)
    macs = [emu.vf_mac(s, p, v) for p in range(2) for v in range(300)]
    macs += [emu.pf_mac(s, p) for p in range(2)]
    assert len(set(macs)) == len(macs)
    for mac in macs:
        assert validate.mac_address(mac) == mac
        assert int(mac[:2], 16) & 0b11 == 0b10  # locally administered, unicast
    assert emu.vf_mac(s, 1, 299) == emu.vf_mac(emu.EmulationSpec(pfs=2, vfs=300), 1, 299)
    other = emu.EmulationSpec(bridge="otheremu0")
    assert emu.vf_mac(other, 0, 0) != emu.vf_mac(s, 0, 0)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"pfs": 0}, "pfs"),
        ({"vfs": 5000}, "vfs"),
        ({"vfs": 2, "vfio": 3}, "vfio"),
        ({"mtu": 20}, "mtu"),
        ({"numa_nodes": -1}, "numa-nodes"),
        ({"pfs": "2"}, "pfs"),
        ({"pf_prefix": "averylongprefix"}, "pf-prefix"),
        ({"wire_prefix": "x/y"}, "wire-prefix"),
        ({"bridge": "a bridge"}, "bridge"),
        ({"profile": "e1000"}, "profile"),
    ],
    ids=lambda v: str(v),
)
def test_bad_values_name_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidInputError) as err:
        emu.EmulationSpec(**kwargs)  # type: ignore[arg-type]
    assert err.value.what == field


def test_names_fit_ifnamsiz_at_the_limits() -> None:
    s = emu.EmulationSpec(pfs=16, vfs=4096, netdevs=False)
    assert len(emu.vf_netdev(s, 15, 4095)) <= 15


def _state() -> emu.EmulationState:
    s = emu.EmulationSpec(pfs=1, vfs=2, vfio=1)
    pf = emu.PfRecord(index=0, address=PciAddress("0000:3b:00.0"), netdev=emu.pf_netdev(s, 0),
                      wire=emu.pf_wire(s, 0), mac=emu.pf_mac(s, 0), numa_node=0)
    vfs = tuple(
        emu.VfRecord(
            pf=0,
            pf_address=PciAddress("0000:3b:00.0"),
            index=i,
            address=PciAddress(f"0000:3b:02.{i}"),
            wire=emu.vf_wire(s, 0, i),
            driver="iavf",
            location=emu.VfLocation.HOST,
            netdev=emu.vf_netdev(s, 0, i),
            mac=emu.vf_mac(s, 0, i),
            mtu=1500,
        )
        for i in range(2)
    )
    return emu.EmulationState(spec=s, pfs=(pf,), vfs=vfs)


def test_state_round_trips_through_json() -> None:
    state = _state()
    text = json.dumps(state.to_json())
    assert emu.EmulationState.from_json(json.loads(text)) == state


def test_state_updates_are_copies() -> None:
    state = _state()
    moved = state.with_vf(
        emu.VfRecord(
            pf=0,
            pf_address=PciAddress("0000:3b:00.0"),
            index=1,
            address=PciAddress("0000:3b:02.1"),
            wire=IfName("sriovw0v1"),
            driver="iavf",
            location=emu.VfLocation.NETNS,
            netdev=IfName("net1"),
            mac=MacAddress("02:00:00:00:00:09"),
            mtu=9000,
        )
    )
    assert state.vf_by_address("0000:3b:02.1").location is emu.VfLocation.HOST  # type: ignore[union-attr]
    assert [v.netdev for v in moved.vfs_of(0)] == ["sriovpf0v0", "net1"]
    assert moved.pf_by_name("sriovpf0") == moved.pf_by_name("0000:3b:00.0")
    assert len(moved.without_vf("0000:3b:02.0").vfs) == 1


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda o: o.update(version=99), "sriov-emu.json version"),
        (lambda o: o["spec"].update(profile="e1000"), "spec.profile"),
        (lambda o: o["vfs"][0].update(location="moon"), "vfs[0].location"),
        (lambda o: o["vfs"][0].update(address="nope"), "PCI address"),
        (lambda o: o["pfs"][0].pop("wire"), "sriov-emu.json"),
    ],
)
def test_corrupt_state_file_names_the_field(mutate, field: str) -> None:  # type: ignore[no-untyped-def]
    obj = json.loads(json.dumps(_state().to_json()))
    mutate(obj)
    with pytest.raises(InvalidInputError) as err:
        emu.EmulationState.from_json(obj)
    assert err.value.what == field
