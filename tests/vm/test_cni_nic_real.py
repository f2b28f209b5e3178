"""NIC mode against the testbed's QEMU ``virtio-net-pci`` NIC (``1af4:1041``, no SR-IOV): the
whole NIC attached into a netns by the CNI and restored exactly (``ip -d link show`` before ADD
equals after DEL), also when the netns was deleted first (a real kernel hands a physical netdev
back to init_net, closed, under its pod name or ``dev<N>``). Skips elsewhere (reason printed).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import unique
from tests.vm import hw
from tests.vm.test_cni_vf_real import call, ip_show, ns_path

VIRTIO_NET = ("0x1af4", "0x1041")


def _virtio_nic() -> tuple[str, str] | None:
    """(PCI address, netdev) of the virtio-net NIC, from sysfs alone."""
    for dev in sorted(Path("/sys/bus/pci/devices").iterdir()):
        ids = tuple((dev / f).read_text().strip() for f in ("vendor", "device"))
        if ids != VIRTIO_NET:
            continue
        nets = sorted(dev.glob("virtio*/net/*"))
        if nets:
            return dev.name, nets[0].name
    return None


@pytest.fixture
def virtio_nic() -> Iterator[tuple[str, str]]:
    found = _virtio_nic()
    if found is None:
        pytest.skip("no virtio-net-pci NIC with a netdev (hack/vm/run.sh adds one)")
    pci, name = found
    subprocess.run(["ip", "link", "set", name, "alias", "st-uplink"], check=True)
    subprocess.run(["ip", "link", "set", name, "up"], check=True)
    try:
        yield pci, name
    finally:
        subprocess.run(["ip", "link", "set", name, "alias", ""], check=False)


def nic_conf(pci: str, tmp: Path, **keys: Any) -> dict[str, Any]:
    return {"cniVersion": "1.1.0", "name": "st-vm", "type": "sriov", "deviceID": pci, **keys,
            "ipam": {"type": "host-local", "dataDir": str(tmp / "ipam"),
                     "ranges": [[{"subnet": "10.78.0.0/24"}]]}}


def test_a_virtio_net_nic_is_attached_whole_and_restored_exactly(
        virtio_nic: tuple[str, str], netns: str, tmp_path: Path) -> None:
    pci, name = virtio_nic
    before = ip_show(name)
    c = nic_conf(pci, tmp_path, mac="02:00:00:00:5b:01", mtu=1400)
    rc, result = call("ADD", c, ns_path(netns), tmp_path)
    assert rc == 0, result
    pod_view = ip_show("net1", netns)
    assert "link/ether 02:00:00:00:5b:01" in pod_view and "mtu 1400" in pod_view
    assert "parentbus virtio" in pod_view, pod_view  # the virtio device under the PCI NIC
    assert not (Path("/sys/class/net") / name).exists()
    assert result["ips"][0]["address"].startswith("10.78.0.")
    assert call("CHECK", {**c, "prevResult": result}, ns_path(netns), tmp_path)[0] == 0
    assert call("DEL", c, ns_path(netns), tmp_path)[0] == 0
    assert ip_show(name) == before


def test_del_after_the_netns_is_deleted_restores_the_virtio_nic(
        virtio_nic: tuple[str, str], tmp_path: Path) -> None:
    pci, name = virtio_nic
    before = ip_show(name)
    pod = unique("st-ns-")
    subprocess.run(["ip", "netns", "add", pod], check=True)
    c = nic_conf(pci, tmp_path, mac="02:00:00:00:5b:02", mtu=1300)
    try:
        assert call("ADD", c, ns_path(pod), tmp_path)[0] == 0
    finally:
        subprocess.run(["ip", "netns", "del", pod], check=False)
    hw.wait_for(_virtio_nic, what=f"{pci} back in the host netns", timeout=30)
    assert call("DEL", c, ns_path(pod), tmp_path)[0] == 0
    assert ip_show(name) == before
    assert call("DEL", c, ns_path(pod), tmp_path)[0] == 0  # idempotent


def test_vf_settings_on_a_nic_are_refused(virtio_nic: tuple[str, str], netns: str,
                                         tmp_path: Path) -> None:
    pci, name = virtio_nic
    before = ip_show(name)
    rc, err = call("ADD", nic_conf(pci, tmp_path, vlan=5), ns_path(netns), tmp_path)
    assert rc != 0 and err["code"] == 7, err
    assert ip_show(name) == before
