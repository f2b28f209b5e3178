"""NIC mode: a whole NIC without SR-IOV (the emulated host's virtio-net NIC, ``1af4:1041``, a
real veth) attached to a real netns through the real ``sriov`` executable and restored exactly.

What a user compares is ``ip -d link show`` of the NIC's host netdev before ADD and after DEL
(name, MAC, MTU, state, alias, altnames), and that no record, owner or lease is left.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cni.nic import ADD_STEPS
from cni.state import StateStore
from sriov.emulate.spec import Profile
from sriov.types import DeviceClass
from tests.conftest import require_root
from tests.integration.cni_vf_harness import (
    Emu,
    Injected,
    del_netns,
    emulated_host,
    link_show,
    netns_path,
    new_netns,
)

pytestmark = pytest.mark.root


@pytest.fixture
def emu(tmp_path: Path) -> Iterator[Emu]:
    require_root()
    yield from emulated_host(tmp_path, profile=Profile.IGB, vfs=1, vfio=0, classes=True)


@pytest.fixture
def ns() -> Iterator[str]:
    require_root()
    name = new_netns()
    try:
        yield netns_path(name)
    finally:
        del_netns(name)


def nic(emu: Emu) -> tuple[str, str]:
    """(PCI address, host netdev) of the virtio-net NIC, as discovery reports it."""
    found = [d for d in emu.host.sysfs.inventory().others if d.device_class is DeviceClass.NIC
             and d.vendor_id == "1af4"]
    assert len(found) == 1, found
    assert found[0].netdev, "the NIC's netdev is not in the host netns"
    return found[0].address, found[0].netdev


def prepare(emu: Emu) -> tuple[str, str]:
    """The NIC as an admin may have it: an alias, an altname, up."""
    pci, name = nic(emu)
    subprocess.run(["ip", "link", "set", name, "alias", "uplink to rack 7"], check=True)
    subprocess.run(["ip", "link", "property", "add", "dev", name, "altname", f"{name}a"],
                   check=True)
    subprocess.run(["ip", "link", "set", name, "up"], check=True)
    return pci, link_show(name)


def without_ifindex(text: str) -> str:
    """A kernel keeps the ifindex of a NIC that comes home; the emulation recreates its veth."""
    return re.sub(r"^\d+: ", "", text)


def assert_clean(emu: Emu, name: str, snap: str, *, same_ifindex: bool = True) -> None:
    now = link_show(name)
    assert (now if same_ifindex else without_ifindex(now)) == \
        (snap if same_ifindex else without_ifindex(snap))
    assert StateStore(emu.state_dir).list_attachments() == ([], [])
    owners = emu.state_dir / "pci" / "owner"
    assert not owners.is_dir() or not list(owners.iterdir())
    net = emu.ipam_dir / "st-net"
    assert not net.is_dir() or not [p for p in net.iterdir() if p.name[0].isdigit()]


def pod_has(ns: str, ifname: str = "net1") -> bool:
    return subprocess.run(["ip", "-n", Path(ns).name, "link", "show", ifname],
                          capture_output=True).returncode == 0


def test_add_check_gc_del_of_a_whole_nic_through_the_executable(emu: Emu, ns: str) -> None:
    pci, snap = prepare(emu)
    name = nic(emu)[1]
    conf = emu.conf(pci, mac="02:00:00:00:aa:07", mtu=1400)
    add = emu.exec("ADD", conf, "c1", ns)
    assert add.rc == 0, add.stdout + add.stderr
    assert add.out is not None
    assert add.out["interfaces"][0]["name"] == "net1"
    assert add.out["interfaces"][0]["mac"] == "02:00:00:00:aa:07"
    assert add.out["interfaces"][0]["pciID"] == pci
    pod = subprocess.run(["ip", "-n", Path(ns).name, "-d", "link", "show", "net1"],
                         capture_output=True, text=True, check=True).stdout
    assert "02:00:00:00:aa:07" in pod and "mtu 1400" in pod and ",UP" in pod
    assert subprocess.run(["ip", "link", "show", name], capture_output=True).returncode != 0
    addr = subprocess.run(["ip", "-n", Path(ns).name, "-4", "addr", "show", "net1"],
                          capture_output=True, text=True, check=True).stdout
    assert "10.55.0." in addr
    # the NIC is in a pod now: discovery still finds it by PCI address, without a netdev
    assert nic_netdev(emu, pci) is None

    check = emu.exec("CHECK", {**conf, "prevResult": add.out}, "c1", ns)
    assert check.rc == 0, check.stdout + check.stderr
    # a second pod cannot take it
    other = new_netns()
    try:
        busy = emu.exec("ADD", conf, "c2", netns_path(other))
        assert busy.rc != 0 and busy.out is not None and busy.out["code"] == 11, busy.stdout
        assert f"NIC {pci} is busy" in busy.out["msg"]
    finally:
        del_netns(other)
    # GC with c1 valid keeps it; DEL restores it exactly (same ifindex: it never left)
    gc = emu.exec("GC", {**conf, "cni.dev/valid-attachments": [
        {"containerID": "c1", "ifname": "net1"}]}, "", "")
    assert gc.rc == 0, gc.stdout + gc.stderr
    assert pod_has(ns)
    dele = emu.exec("DEL", conf, "c1", ns)
    assert dele.rc == 0, dele.stdout + dele.stderr
    assert not pod_has(ns)
    assert_clean(emu, name, snap)


def nic_netdev(emu: Emu, pci: str) -> str | None:
    return emu.host.sysfs.device(pci).netdev


def test_gc_restores_a_nic_whose_attachment_is_not_valid(emu: Emu, ns: str) -> None:
    pci, snap = prepare(emu)
    name = nic(emu)[1]
    conf = emu.conf(pci)
    assert emu.exec("ADD", conf, "c1", ns).rc == 0
    gc = emu.exec("GC", {**conf, "cni.dev/valid-attachments": []}, "", "")
    assert gc.rc == 0, gc.stdout + gc.stderr
    assert not pod_has(ns)
    assert_clean(emu, name, snap)


def test_del_after_the_netns_is_gone_restores_the_nic_exactly(emu: Emu) -> None:
    pci, snap = prepare(emu)
    name = nic(emu)[1]
    conf = emu.conf(pci, mac="02:00:00:00:aa:08", mtu=1300)
    pod = new_netns()
    try:
        add = emu.exec("ADD", conf, "c1", netns_path(pod))
        assert add.rc == 0, add.stdout + add.stderr
    finally:
        del_netns(pod)
    # the kernel hands the NIC back to the host netns (down, the pod's MAC/MTU); no refresh
    # from the test: the plugin finds it by PCI address through sysfs alone
    dele = emu.exec("DEL", conf, "c1", netns_path(pod))
    assert dele.rc == 0, dele.stdout + dele.stderr
    assert_clean(emu, name, snap, same_ifindex=False)


def test_del_after_the_netns_is_gone_when_the_name_was_taken(emu: Emu) -> None:
    """The kernel names a homecoming netdev ``dev<N>`` when its name is taken; DEL still finds
    it by PCI address and restores it (here: its host name is free again by then)."""
    pci, snap = prepare(emu)
    name = nic(emu)[1]
    conf = emu.conf(pci)
    pod = new_netns()
    squatter = "net1"  # the name the NIC has in the pod, taken in the host meanwhile
    try:
        assert emu.exec("ADD", conf, "c1", netns_path(pod)).rc == 0
        subprocess.run(["ip", "link", "add", squatter, "type", "veth", "peer", "name",
                        f"{squatter}p"], check=True)
        subprocess.run(["ip", "link", "add", name, "type", "bridge"], check=True)
    finally:
        del_netns(pod)
    try:
        # make the host name free again before DEL (the emulated NIC is back as dev<N>)
        for _ in range(200):
            if emu.host.sysfs.device(pci).netdev:
                break
            time.sleep(0.05)
        back = emu.host.sysfs.device(pci).netdev
        assert back is not None and back != name, back
        subprocess.run(["ip", "link", "del", name], check=True)
        dele = emu.exec("DEL", conf, "c1", netns_path(pod))
        assert dele.rc == 0, dele.stdout + dele.stderr
    finally:
        subprocess.run(["ip", "link", "del", squatter], capture_output=True)
        shown = subprocess.run(["ip", "-d", "link", "show", name], capture_output=True, text=True)
        if "bridge " in shown.stdout:  # only our stand-in, never the restored NIC
            subprocess.run(["ip", "link", "del", name], capture_output=True)
    assert_clean(emu, name, snap, same_ifindex=False)


@pytest.mark.parametrize("step", ADD_STEPS)
def test_injected_failure_at_each_add_step_rolls_back_everything(
    emu: Emu, ns: str, step: str
) -> None:
    pci, snap = prepare(emu)
    name = nic(emu)[1]

    def fail(at: str) -> None:
        if at == step:
            raise Injected(f"injected failure at {at}")

    conf = emu.conf(pci, mac="02:00:00:00:aa:09", mtu=1450)
    add = emu.call("ADD", conf, "c1", ns, faults=fail)
    assert add.rc == 1 and add.out is not None and "injected failure" in add.out.get(
        "details", ""), add.out
    assert not pod_has(ns)
    assert_clean(emu, name, snap)
    assert emu.call("ADD", conf, "c1", ns).rc == 0  # and it is usable again
    assert emu.call("DEL", conf, "c1", ns).rc == 0
    assert_clean(emu, name, snap)


@pytest.mark.parametrize("keys", [{"vlan": 10}, {"spoofchk": "off"}, {"trust": "on"},
                                  {"max_tx_rate": 100}, {"link_state": "enable"}])
def test_pf_side_settings_on_a_nic_are_refused_before_anything(
    emu: Emu, ns: str, keys: dict[str, object]
) -> None:
    pci, snap = prepare(emu)
    name = nic(emu)[1]
    add = emu.exec("ADD", emu.conf(pci, **keys), "c1", ns)
    assert add.rc != 0 and add.out is not None and add.out["code"] == 7, add.stdout
    assert "NIC without SR-IOV" in add.out["msg"]
    assert add.stdout.count("{") >= 1 and "Traceback" not in add.stdout + add.stderr
    assert not pod_has(ns)
    assert_clean(emu, name, snap)


def test_the_pool_guard_applies_to_nics(emu: Emu, ns: str, tmp_path: Path) -> None:
    """With the device plugin's pool config, a NIC no pool selects is refused (code 100) before
    anything is touched; one a pool selects (as the device plugin pools NICs) is attached."""
    pci, snap = prepare(emu)
    name = nic(emu)[1]
    config = tmp_path / "pools.json"
    config.write_text(json.dumps({"resourceList": [
        {"resourceName": "intel_vfs", "selectors": [{"vendors": ["8086"]}]}]}))
    refused = emu.exec("ADD", emu.conf(pci), "c1", ns, SRIOV_CNI_POOL_CONFIG=str(config))
    assert refused.rc != 0 and refused.out is not None and refused.out["code"] == 100, \
        refused.stdout
    assert f"deviceID {pci} (nic {name})" in refused.out["msg"]
    assert_clean(emu, name, snap)
    config.write_text(json.dumps({"resourceList": [
        {"resourceName": "virtio_nics", "selectors": [{"vendors": ["1af4"]}]}]}))
    add = emu.exec("ADD", emu.conf(pci), "c1", ns, SRIOV_CNI_POOL_CONFIG=str(config))
    assert add.rc == 0, add.stdout + add.stderr
    assert emu.exec("DEL", emu.conf(pci), "c1", ns, SRIOV_CNI_POOL_CONFIG=str(config)).rc == 0
    assert_clean(emu, name, snap)


def test_add_on_an_existing_pod_ifname_is_refused_and_leaves_the_nic(emu: Emu, ns: str) -> None:
    pci, snap = prepare(emu)
    name = nic(emu)[1]
    subprocess.run(["ip", "-n", Path(ns).name, "link", "add", "net1", "type", "veth", "peer",
                    "name", "net1p"], check=True)
    add = emu.exec("ADD", emu.conf(pci), "c1", ns)
    assert add.rc != 0 and add.out is not None and add.out["code"] == 107, add.stdout
    assert_clean(emu, name, snap)


def test_check_sees_drift_and_del_is_idempotent(emu: Emu, ns: str) -> None:
    pci, snap = prepare(emu)
    name = nic(emu)[1]
    conf = emu.conf(pci, mtu=1400)
    add = emu.exec("ADD", conf, "c1", ns)
    assert add.rc == 0, add.stdout
    subprocess.run(["ip", "-n", Path(ns).name, "link", "set", "net1", "mtu", "1300"], check=True)
    check = emu.exec("CHECK", {**conf, "prevResult": add.out}, "c1", ns)
    assert check.rc != 0 and check.out is not None and check.out["code"] == 108, check.stdout
    assert "mtu: expected 1400, found 1300" in check.out["details"]
    for _ in range(2):
        dele = emu.exec("DEL", conf, "c1", ns)
        assert dele.rc == 0, dele.stdout
    assert_clean(emu, name, snap)
