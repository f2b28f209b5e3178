"""VF mode ADD/CHECK/DEL on an emulated host (veth-backed VFs) in real network namespaces.

The plugin runs in-process through ``cni.main.run`` (and, where marked, as the real ``sriov``
executable); IPAM is the in-process host-local or the Debian reference binaries in /usr/lib/cni.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cni.state import StateStore
from cni.vf import ADD_STEPS
from sriov.emulate import changes
from sriov.emulate.spec import Profile
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
VERSIONS = ("0.3.1", "0.4.0", "1.0.0", "1.1.0")


@pytest.fixture
def emu(tmp_path: Path) -> Iterator[Emu]:
    require_root()
    yield from emulated_host(tmp_path)


@pytest.fixture
def ns() -> Iterator[str]:
    require_root()
    name = new_netns()
    try:
        yield netns_path(name)
    finally:
        del_netns(name)


def before(emu: Emu, index: int = 0) -> tuple[str, Any]:
    """What a user compares: ``ip -d link show`` of the VF netdev and its PF-side settings."""
    vf = emu.vf(index)
    return link_show(vf.netdev), emu.host.vf_admin.read(emu.pf_netdev, index)


def leases(emu: Emu) -> list[str]:
    net = emu.ipam_dir / "st-net"
    return sorted(p.name for p in net.iterdir() if p.name[0].isdigit()) if net.is_dir() else []


def without_ifindex(snap: tuple[str, Any]) -> tuple[str, Any]:
    """The emulation recreates a VF's veth when its netns dies (new ifindex); a kernel does not."""
    return re.sub(r"^\d+: ", "", snap[0]), snap[1]


def assert_clean(
    emu: Emu, snap: tuple[str, Any], index: int = 0, *, same_ifindex: bool = True
) -> None:
    if same_ifindex:
        assert before(emu, index) == snap
    else:
        assert without_ifindex(before(emu, index)) == without_ifindex(snap)
    store = StateStore(emu.state_dir)
    assert store.list_attachments() == ([], [])
    owners = emu.state_dir / "pci" / "owner"
    assert not owners.is_dir() or not list(owners.iterdir())
    assert leases(emu) == []


def pod_link(netns: str, ifname: str = "net1") -> dict[str, Any]:
    out = subprocess.run(["ip", "-n", Path(netns).name, "-j", "addr", "show", "dev", ifname],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)[0]


# ------------------------------------------------------------------ verbs x versions

@pytest.mark.parametrize("version", VERSIONS)
def test_add_check_del_restores_exactly(emu: Emu, ns: str, version: str) -> None:
    vf = emu.vf(0)
    snap = before(emu)
    conf = emu.conf(vf.address, version)
    add = emu.call("ADD", conf, "c1", ns)
    assert add.rc == 0, add.stdout
    assert add.out["cniVersion"] == version
    iface = add.out["interfaces"][0]
    assert iface["name"] == "net1" and iface["sandbox"] == ns
    if version >= "1.1.0":
        assert iface["pciID"] == vf.address
    ip = add.out["ips"][0]["address"]
    link = pod_link(ns)
    assert link["operstate"] in ("UP", "UNKNOWN") and "UP" in link["flags"]
    assert ip in [f"{a['local']}/{a['prefixlen']}" for a in link["addr_info"]]
    assert emu.vf(0).netdev is None  # gone from the host netns
    if version >= "0.4.0":
        check = emu.call("CHECK", {**conf, "prevResult": add.out}, "c1", ns)
        assert check.rc == 0 and check.stdout == "", check.stdout
    dele = emu.call("DEL", {**conf, "prevResult": add.out}, "c1", ns)
    assert dele.rc == 0 and dele.stdout == ""
    assert_clean(emu, snap)


def test_prev_result_of_an_earlier_plugin_passes_through(emu: Emu, ns: str) -> None:
    """In a chain after another plugin: its interfaces/IPs stay first, ours are appended."""
    prev = {"cniVersion": "1.1.0", "interfaces": [{"name": "eth0", "sandbox": ns}],
            "ips": [{"address": "10.99.0.2/24", "interface": 0}],
            "routes": [{"dst": "10.98.0.0/16", "gw": "10.99.0.1"}],
            "dns": {"nameservers": ["10.99.0.53"]}}
    conf = {**emu.conf(emu.vf(0).address), "prevResult": prev}
    add = emu.call("ADD", conf, "c1", ns)
    assert add.rc == 0, add.stdout + add.stderr
    assert [i["name"] for i in add.out["interfaces"]] == ["eth0", "net1"]
    assert add.out["ips"][0] == prev["ips"][0]
    assert add.out["ips"][1]["interface"] == 1
    assert add.out["ips"][1]["address"].startswith("10.55.0.")
    assert add.out["routes"][0] == prev["routes"][0]
    assert add.out["dns"] == prev["dns"]
    assert emu.call("DEL", conf, "c1", ns).rc == 0


@pytest.mark.parametrize("version", ["0.1.0", "0.2.0"])
def test_legacy_versions_report_ip4(emu: Emu, ns: str, version: str) -> None:
    snap = before(emu)
    conf = emu.conf(emu.vf(0).address, version)
    add = emu.call("ADD", conf, "c1", ns)
    assert add.rc == 0, add.stdout
    assert add.out["ip4"]["ip"].startswith("10.55.0.") and "interfaces" not in add.out
    assert emu.call("DEL", conf, "c1", ns).rc == 0
    assert_clean(emu, snap)


def test_every_pf_side_key_applied_then_restored(emu: Emu, ns: str) -> None:
    snap = before(emu)
    conf = emu.conf(emu.vf(0).address, vlan=100, vlanQoS=3, vlanProto="802.1q",
                    mac="02:aa:bb:cc:dd:01", spoofchk="off", trust="on", max_tx_rate=500,
                    min_tx_rate=0, mtu=1400)
    add = emu.call("ADD", conf, "c1", ns)
    assert add.rc == 0, add.stdout
    state = emu.host.vf_admin.read(emu.pf_netdev, 0)
    assert (state.vlan, state.qos, state.mac, state.spoofchk, state.trust, state.max_tx_rate) == (
        100, 3, "02:aa:bb:cc:dd:01", False, True, 500)
    link = pod_link(ns)
    assert (link["address"], link["mtu"]) == ("02:aa:bb:cc:dd:01", 1400)
    assert add.out["interfaces"][0]["mac"] == "02:aa:bb:cc:dd:01"
    assert add.out["interfaces"][0]["mtu"] == 1400
    assert emu.call("CHECK", {**conf, "prevResult": add.out}, "c1", ns).rc == 0
    assert emu.call("DEL", conf, "c1", ns).rc == 0
    assert_clean(emu, snap)


@pytest.mark.parametrize(("keys", "setting"), [
    ({"vlan": 10, "vlanProto": "802.1ad"}, "vlan"),
    ({"vlan": 10, "mac": "02:aa:00:00:00:09", "link_state": "enable"}, "link_state"),
    ({"spoofchk": "off", "min_tx_rate": 10, "max_tx_rate": 100}, "tx_rate"),
])
def test_driver_refusal_names_setting_and_rolls_back(emu: Emu, ns: str, keys: dict[str, Any],
                                                     setting: str) -> None:
    snap = before(emu)
    add = emu.call("ADD", emu.conf(emu.vf(0).address, **keys), "c1", ns)
    assert add.rc == 1
    assert add.out["code"] == 103 and setting in add.out["msg"]
    assert_clean(emu, snap)
    assert subprocess.run(["ip", "-n", Path(ns).name, "link", "show", "net1"],
                          capture_output=True).returncode != 0


def test_link_state_on_x710(tmp_path: Path, ns: str) -> None:
    gen = emulated_host(tmp_path, Profile.X710)
    emu = next(gen)
    try:
        snap = before(emu)
        conf = emu.conf(emu.vf(0).address, link_state="enable")
        assert emu.call("ADD", conf, "c1", ns).rc == 0
        assert emu.host.vf_admin.read(emu.pf_netdev, 0).link_state == "enable"
        assert emu.call("DEL", conf, "c1", ns).rc == 0
        assert_clean(emu, snap)
    finally:
        gen.close()


def test_log_file_gets_the_log_and_stdout_only_the_result(
    emu: Emu, ns: str, tmp_path: Path
) -> None:
    log_file = tmp_path / "sriov.log"
    conf = emu.conf(emu.vf(0).address, logLevel="debug", logFile=str(log_file))
    add = emu.call("ADD", conf, "c1", ns)
    assert add.rc == 0 and json.loads(add.stdout)["interfaces"]
    text = log_file.read_text()
    assert "ADD vf" in text and "DEBUG" in text
    assert emu.call("DEL", conf, "c1", ns).rc == 0
    assert "restored" in log_file.read_text()


@pytest.mark.parametrize("where", ["runtimeConfig", "pciBusID", "cni_args_mac"])
def test_device_and_mac_from_runtime_config_multus_and_cni_args(
    emu: Emu, ns: str, where: str
) -> None:
    snap = before(emu)
    pci = emu.vf(0).address
    mac = "02:00:00:00:aa:07"
    extra: dict[str, str] = {}
    if where == "runtimeConfig":
        conf = emu.conf(None, runtimeConfig={"deviceID": pci, "mac": mac})
    elif where == "pciBusID":
        conf = emu.conf(None, pciBusID=pci, mac=mac)
    else:
        conf = emu.conf(pci)
        extra = {"CNI_ARGS": f"IgnoreUnknown=1;MAC={mac}"}
    add = emu.call("ADD", conf, "c1", ns, **extra)
    assert add.rc == 0, add.stdout
    assert add.out["interfaces"][0]["pciID"] == pci
    assert pod_link(ns)["address"] == mac
    assert emu.call("DEL", conf, "c1", ns, **extra).rc == 0
    assert_clean(emu, snap)


@pytest.mark.parametrize(("device", "code"), [
    ("0000:3b:00.0", 100),  # the PF itself
    ("0000:3b:1f.7", 100),  # no such device
    ("../../etc", 7),  # path-like
    ("3b:10", 7),  # malformed
])
def test_device_id_that_is_not_a_vf_is_refused_before_anything(emu: Emu, ns: str, device: str,
                                                                code: int) -> None:
    snap = before(emu)
    add = emu.call("ADD", emu.conf(device), "c1", ns)
    assert add.rc == 1 and add.out["code"] == code, add.out
    assert_clean(emu, snap)


# ------------------------------------------------------------------ DEL idempotency

def test_del_when_netns_is_gone_returns_vf_under_original_name(emu: Emu) -> None:
    snap = before(emu)
    name = new_netns()
    try:
        conf = emu.conf(emu.vf(0).address, mac="02:00:00:00:bb:01", mtu=1300)
        assert emu.call("ADD", conf, "c1", netns_path(name)).rc == 0
    finally:
        del_netns(name)
    emu.host.refresh()  # the kernel returned the VF as net1 with the pod's MAC/MTU
    dele = emu.call("DEL", conf, "c1", netns_path(name))
    assert dele.rc == 0, dele.stdout
    assert_clean(emu, snap, same_ifindex=False)


def test_del_twice_without_prev_result_and_with_empty_netns(emu: Emu, ns: str) -> None:
    snap = before(emu)
    conf = emu.conf(emu.vf(0).address, vlan=7)
    assert emu.call("ADD", conf, "c1", ns).rc == 0
    first = emu.call("DEL", conf, "c1", "")  # empty CNI_NETNS: the recorded netns is used
    assert first.rc == 0, first.stdout
    assert_clean(emu, snap)
    assert emu.call("DEL", conf, "c1", ns).rc == 0
    assert emu.call("DEL", conf, "c1", "").rc == 0
    assert_clean(emu, snap)


def test_del_with_no_state_succeeds(emu: Emu, ns: str) -> None:
    snap = before(emu)
    assert emu.call("DEL", emu.conf(emu.vf(0).address), "never-added", ns).rc == 0
    assert_clean(emu, snap)


def test_add_on_existing_ifname_is_refused_and_leaves_it(emu: Emu, ns: str) -> None:
    snap = before(emu)
    name = Path(ns).name
    subprocess.run(["ip", "-n", name, "link", "add", "net1", "type", "veth", "peer", "st-peer"],
                   check=True)
    existing = link_show("net1", name)
    add = emu.call("ADD", emu.conf(emu.vf(0).address), "c1", ns)
    assert add.rc == 1 and "already exists" in add.out["msg"]
    assert link_show("net1", name) == existing
    assert_clean(emu, snap)


# ------------------------------------------------------------------ rollback

@pytest.mark.parametrize("step", ADD_STEPS)
def test_injected_failure_at_each_add_step_rolls_back_everything(
    emu: Emu, ns: str, step: str
) -> None:
    snap = before(emu)

    def fail(at: str) -> None:
        if at == step:
            raise Injected(f"injected failure at {at}")

    conf = emu.conf(emu.vf(0).address, vlan=12, mac="02:00:00:00:cc:01", spoofchk="off", mtu=1450)
    add = emu.call("ADD", conf, "c1", ns, faults=fail)
    assert add.rc == 1 and "injected failure" in add.out.get("details", ""), add.out
    assert_clean(emu, snap)
    assert subprocess.run(["ip", "-n", Path(ns).name, "link", "show", "net1"],
                          capture_output=True).returncode != 0
    # and the VF is usable again
    assert emu.call("ADD", conf, "c1", ns).rc == 0
    assert emu.call("DEL", conf, "c1", ns).rc == 0
    assert_clean(emu, snap)


# ------------------------------------------------------------------ concurrency and ownership

def test_concurrent_adds_on_different_vfs_get_distinct_ips(emu: Emu) -> None:
    snaps = [before(emu, 0), before(emu, 1)]
    names = [new_netns(), new_netns()]
    replies: dict[int, Any] = {}
    confs = [emu.conf(emu.vf(i).address) for i in (0, 1)]
    try:
        threads = [threading.Thread(target=lambda i=i: replies.__setitem__(
            i, emu.call("ADD", confs[i], f"c{i}", netns_path(names[i])))) for i in (0, 1)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert all(r.rc == 0 for r in replies.values()), [
            r.stdout + r.stderr for r in replies.values()
        ]
        ips = {r.out["ips"][0]["address"] for r in replies.values()}
        assert len(ips) == 2
        for i in (0, 1):
            assert emu.call("DEL", confs[i], f"c{i}", netns_path(names[i])).rc == 0
    finally:
        for n in names:
            del_netns(n)
    for i in (0, 1):
        assert before(emu, i) == snaps[i]
    assert leases(emu) == []


@pytest.mark.parametrize("at", ["ipam", "save-result"])
def test_add_del_race_on_one_vf_is_serialised(emu: Emu, ns: str, at: str,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A DEL issued while ADD runs waits for it, then undoes it completely: no second DEL.

    The interleaving is forced: ADD pauses at step ``at`` until the DEL is at the attachment
    lock (every verb takes it first), and after ADD releases the lock it waits for the DEL to
    finish (the window where a record saved after the lock would outlive the DEL)."""
    snap = before(emu)
    conf = emu.conf(emu.vf(0).address, vlan=5)
    adder = threading.current_thread()
    del_at_lock = threading.Event()
    racing: list[Any] = []
    real_lock = StateStore.attachment_lock

    @contextlib.contextmanager
    def traced_lock(self: StateStore, cid: str, ifname: str,
                    timeout: float = 60.0) -> Iterator[None]:
        if threading.current_thread() is not adder:
            del_at_lock.set()
        with real_lock(self, cid, ifname, timeout):
            yield
        if threading.current_thread() is adder and racing:
            racing[0].join(timeout=60)

    monkeypatch.setattr(StateStore, "attachment_lock", traced_lock)

    def start_del(step: str) -> None:
        if step == at and not racing:
            t = threading.Thread(target=lambda: racing.append(emu.call("DEL", conf, "c1", ns)))
            racing.append(t)
            t.start()
            assert del_at_lock.wait(timeout=60), "the racing DEL never reached the lock"

    add = emu.call("ADD", conf, "c1", ns, faults=start_del)
    racing[0].join(timeout=60)
    assert add.rc == 0 and racing[1].rc == 0, (add.stdout, racing[1].stdout)
    assert_clean(emu, snap)  # record, owner, lease and VF all gone with the one racing DEL


def test_live_owner_makes_vf_busy(emu: Emu, ns: str) -> None:
    conf = emu.conf(emu.vf(0).address)
    assert emu.call("ADD", conf, "c1", ns).rc == 0
    other = new_netns()
    try:
        busy = emu.call("ADD", conf, "c2", netns_path(other))
        assert busy.rc == 1 and busy.out["code"] == 11 and "busy" in busy.out["msg"]
        assert pod_link(ns)["operstate"] != "DOWN"
    finally:
        del_netns(other)
    assert emu.call("DEL", conf, "c1", ns).rc == 0


def test_late_del_of_a_vf_reowned_by_another_container_leaves_it(emu: Emu, ns: str) -> None:
    snap = before(emu)
    old = new_netns()
    conf1 = emu.conf(emu.vf(0).address, vlan=11)
    conf2 = emu.conf(emu.vf(0).address, vlan=22, mac="02:00:00:00:dd:02")
    try:
        assert emu.call("ADD", conf1, "c1", netns_path(old)).rc == 0
    finally:
        del_netns(old)  # pod 1 is gone but kubelet's DEL is late
    add2 = emu.call("ADD", conf2, "c2", ns)
    assert add2.rc == 0, add2.stdout + add2.stderr  # stale owner reclaimed
    late = emu.call("DEL", conf1, "c1", netns_path(old))
    assert late.rc == 0
    assert pod_link(ns)["address"] == "02:00:00:00:dd:02"
    assert emu.host.vf_admin.read(emu.pf_netdev, 0).vlan == 22
    assert leases(emu) == [add2.out["ips"][0]["address"].split("/")[0]]
    assert emu.call("DEL", conf2, "c2", ns).rc == 0
    assert_clean(emu, snap, same_ifindex=False)


@pytest.mark.parametrize("key", ["cni.dev/valid-attachments", "cni.dev/attachments"])
def test_gc_releases_the_lease_of_a_reclaimed_stale_owner(emu: Emu, ns: str, key: str) -> None:
    """Pod 1's netns died and its DEL never came; pod 2 took the VF over. GC frees pod 1's lease
    and record and leaves pod 2 (named in the valid list) untouched."""
    snap = before(emu)
    old = new_netns()
    conf1 = emu.conf(emu.vf(0).address, vlan=11)
    conf2 = emu.conf(emu.vf(0).address, vlan=22)
    try:
        add1 = emu.call("ADD", conf1, "c1", netns_path(old))
        assert add1.rc == 0, add1.stdout
    finally:
        del_netns(old)
    add2 = emu.call("ADD", conf2, "c2", ns)
    assert add2.rc == 0, add2.stdout + add2.stderr
    ip1, ip2 = (a.out["ips"][0]["address"].split("/")[0] for a in (add1, add2))
    assert leases(emu) == sorted([ip1, ip2])  # the reclaim keeps pod 1's lease for its late DEL
    gc = emu.call("GC", {**conf2, key: [{"containerID": "c2", "ifname": "net1"}]}, "", "")
    assert gc.rc == 0, gc.stdout + gc.stderr
    assert leases(emu) == [ip2]
    assert [r.key for r in StateStore(emu.state_dir).list_attachments()[0]] == [
        ("c2", "net1")]
    assert emu.host.vf_admin.read(emu.pf_netdev, 0).vlan == 22
    assert pod_link(ns)["operstate"] != "DOWN"
    assert emu.call("DEL", conf2, "c2", ns).rc == 0
    assert_clean(emu, snap, same_ifindex=False)


def test_gc_restores_a_vf_whose_attachment_is_not_valid(emu: Emu, ns: str) -> None:
    snap = before(emu)
    conf = emu.conf(emu.vf(0).address, vlan=7, mtu=1400)
    assert emu.call("ADD", conf, "c1", ns).rc == 0
    gc = emu.call("GC", {**conf, "cni.dev/valid-attachments": []}, "", "")
    assert gc.rc == 0, gc.stdout + gc.stderr
    assert_clean(emu, snap)


# ------------------------------------------------------------------ DPDK mode

def test_dpdk_mode_on_a_rebound_vf(emu: Emu, ns: str) -> None:
    pci = emu.vf(1).address
    changes.rebind(emu.root, pci, "vfio-pci", emu.nl)
    pf_before = emu.host.vf_admin.read(emu.pf_netdev, 1)
    conf = emu.conf(pci, vlan=30, mac="02:00:00:00:ee:01", spoofchk="off")
    add = emu.call("ADD", conf, "c1", ns)
    assert add.rc == 0, add.stdout
    assert add.out["interfaces"][0] == {"name": "net1", "mac": "02:00:00:00:ee:01",
                                        "sandbox": ns, "pciID": pci}
    assert add.out["ips"][0]["address"].startswith("10.55.0.")
    assert subprocess.run(["ip", "-n", Path(ns).name, "link", "show", "net1"],
                          capture_output=True).returncode != 0  # nothing configured in the pod
    state = emu.host.vf_admin.read(emu.pf_netdev, 1)
    assert (state.vlan, state.mac, state.spoofchk) == (30, "02:00:00:00:ee:01", False)
    assert emu.call("CHECK", {**conf, "prevResult": add.out}, "c1", ns).rc == 0
    assert emu.call("DEL", conf, "c1", ns).rc == 0
    assert emu.host.vf_admin.read(emu.pf_netdev, 1) == pf_before
    assert leases(emu) == [] and StateStore(emu.state_dir).list_attachments() == ([], [])


# ------------------------------------------------------------------ CHECK

@pytest.mark.parametrize(("change", "code"), [
    (["address", "02:00:00:00:00:99"], 108),
    (["mtu", "1280"], 108),
    (["down"], 108),
])
def test_check_detects_out_of_band_changes(emu: Emu, ns: str, change: list[str], code: int) -> None:
    conf = emu.conf(emu.vf(0).address)
    add = emu.call("ADD", conf, "c1", ns)
    subprocess.run(["ip", "-n", Path(ns).name, "link", "set", "dev", "net1", *change], check=True)
    check = emu.call("CHECK", {**conf, "prevResult": add.out}, "c1", ns)
    assert check.rc == 1 and check.out["code"] == code, check.out
    assert emu.call("DEL", conf, "c1", ns).rc == 0


def test_check_detects_pf_side_drift_and_never_added(emu: Emu, ns: str) -> None:
    conf = emu.conf(emu.vf(0).address, vlan=40)
    add = emu.call("ADD", conf, "c1", ns)
    never = emu.call("CHECK", {**conf, "prevResult": add.out}, "c9", ns)
    assert never.rc == 1 and never.out["code"] == 3
    from sriov.types import VfSettings
    emu.host.vf_admin.apply(emu.pf_netdev, 0, VfSettings(vlan=41))
    check = emu.call("CHECK", {**conf, "prevResult": add.out}, "c1", ns)
    assert check.rc == 1 and check.out["code"] == 103 and "vlan" in check.out["details"]
    assert emu.call("DEL", conf, "c1", ns).rc == 0


# ------------------------------------------------------------------ real executable, exec IPAM

@pytest.mark.parametrize("ipam", ["host-local", "static"])
def test_sriov_executable_with_reference_ipam(emu: Emu, ns: str, ipam: str) -> None:
    snap = before(emu)
    # Debian's reference IPAM plugins (1.1.1) speak up to cniVersion 1.0.0
    conf = emu.conf(emu.vf(0).address, "1.0.0", ipam=ipam, vlan=9)
    extra = {"SRIOV_CNI_EXEC_IPAM": "1"}
    add = emu.exec("ADD", conf, "c1", ns, **extra)
    assert add.rc == 0, (add.stdout, add.stderr)
    ip = add.out["ips"][0]["address"]
    assert ip == "10.56.0.5/24" if ipam == "static" else ip.startswith("10.55.0.")
    assert emu.exec("CHECK", {**conf, "prevResult": add.out}, "c1", ns, **extra).rc == 0
    dele = emu.exec("DEL", conf, "c1", ns, **extra)
    assert dele.rc == 0 and dele.stdout == ""
    assert_clean(emu, snap)


def test_concurrent_adds_as_processes(emu: Emu) -> None:
    names = [new_netns(), new_netns()]
    confs = [emu.conf(emu.vf(i).address) for i in (0, 1)]
    try:
        procs = [subprocess.Popen([str(__import__("tests.integration.cni_vf_harness",
                                                  fromlist=["SRIOV_EXE"]).SRIOV_EXE)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  env=emu.env("ADD", f"p{i}", netns_path(names[i])))
                 for i in (0, 1)]
        outs = [
            p.communicate(json.dumps(confs[i]).encode(), timeout=60)[0] for i, p in enumerate(procs)
        ]
        assert [p.returncode for p in procs] == [0, 0], outs
        ips = {json.loads(o)["ips"][0]["address"] for o in outs}
        assert len(ips) == 2
        for i in (0, 1):
            assert emu.exec("DEL", confs[i], f"p{i}", netns_path(names[i])).rc == 0
    finally:
        for n in names:
            del_netns(n)
    assert leases(emu) == []


def test_vf_netdev_with_altnames_moves_under_a_temp_name_and_gets_them_back(
    emu: Emu, ns: str
) -> None:
    """An altname equal to CNI_IFNAME (udev/systemd naming, sriov-cni #445) must not break the
    rename in the pod; DEL gives the VF its altnames back."""
    vf = emu.vf(0)
    subprocess.run(
        ["ip", "link", "property", "add", "dev", vf.netdev, "altname", "net1"], check=True
    )
    subprocess.run(["ip", "link", "property", "add", "dev", vf.netdev, "altname", "st-alt-vf0"],
                   check=True)
    snap = before(emu)
    conf = emu.conf(vf.address)
    add = emu.call("ADD", conf, "c1", ns)
    assert add.rc == 0, add.stdout
    pod = link_show("net1", Path(ns).name)
    assert "altname" not in pod  # dropped in the pod: net1 is its name, nothing else
    dele = emu.call("DEL", {**conf, "prevResult": add.out}, "c1", ns)
    assert dele.rc == 0, dele.stdout
    assert_clean(emu, snap)
    assert "altname net1" in snap[0] and "altname st-alt-vf0" in snap[0]


def test_routes_keep_priority_and_table_in_the_pod(emu: Emu, ns: str) -> None:
    """VF mode configures IPAM routes as the fallback mode does: metric and table included."""
    vf = emu.vf(0)
    conf = emu.conf(vf.address, "1.1.0")
    conf["ipam"]["routes"] = [{"dst": "10.99.0.0/16", "priority": 77},
                              {"dst": "10.98.0.0/16", "table": 100}]
    add = emu.call("ADD", conf, "c1", ns)
    assert add.rc == 0, add.stdout
    try:
        routes = json.loads(subprocess.run(
            ["ip", "-n", Path(ns).name, "-j", "route", "show", "table", "all"],
            capture_output=True, text=True, check=True).stdout)
        by_dst = {(r["dst"], r.get("table", "main")): r for r in routes}
        assert by_dst[("10.99.0.0/16", "main")].get("metric") == 77
        assert ("10.98.0.0/16", "100") in by_dst
    finally:
        assert emu.call("DEL", {**conf, "prevResult": add.out}, "c1", ns).rc == 0
