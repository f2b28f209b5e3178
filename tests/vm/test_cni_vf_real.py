"""VF/DPDK mode against a real igb PF in the QEMU testbed (skips elsewhere, reason printed).

ADD/CHECK/DEL with vlan/qos/mac/spoofchk/trust/max_tx_rate on a real VF, then exact restore:
the full ``ip -d link show`` of the PF and of the VF netdev after DEL equals the one before ADD
(including the igb PF's view of the VF MAC and igbvf's ``permaddr``, see docs/cni.md
"Exact restore on real VF drivers"). Netns-gone DEL, DPDK on a vfio-bound VF.
"""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from cni.main import Runtime, run
from tests.conftest import unique
from tests.vm import hw
from tests.vm.conftest import link_with_carrier

KEYS = {"vlan": 100, "vlanQoS": 2, "mac": "02:00:00:00:5a:01", "spoofchk": "off", "trust": "on",
        "max_tx_rate": 100}


def ip_show(name: str, netns: str | None = None) -> str:
    """``ip -d link show dev <name>``, verbatim (what a user compares)."""
    argv = ["ip", *(["-n", netns] if netns else []), "-d", "link", "show", "dev", name]
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


def call(command: str, conf: dict[str, Any], netns: str, tmp: Path, cid: str = "vm1",
         ) -> tuple[int, Any]:
    env = {"CNI_COMMAND": command, "CNI_CONTAINERID": cid, "CNI_NETNS": netns,
           "CNI_IFNAME": "net1", "CNI_PATH": "/usr/lib/cni",
           "SRIOV_CNI_STATE_DIR": str(tmp / "state")}
    out = io.StringIO()
    rc = run(env, json.dumps(conf).encode(), out, io.StringIO(), runtime=Runtime.from_env(env),
             timeout=0)
    return rc, json.loads(out.getvalue()) if out.getvalue().strip() else None


def conf(pci: str, tmp: Path, **keys: Any) -> dict[str, Any]:
    return {"cniVersion": "1.1.0", "name": "st-vm", "type": "sriov", "deviceID": pci, **keys,
            "ipam": {"type": "host-local", "dataDir": str(tmp / "ipam"),
                     "ranges": [[{"subnet": "10.77.0.0/24"}]]}}


def ns_path(name: str) -> str:
    return f"/var/run/netns/{name}"


def test_add_check_del_on_a_real_vf_restores_pf_and_vf(pf_up_with_vfs: Any, netns: str,
                                                       tmp_path: Path) -> None:
    pf, vfs = pf_up_with_vfs
    vf = vfs[0]
    netdev = vf.netdev
    before = ip_show(pf.netdev), ip_show(netdev)
    c = conf(vf.address, tmp_path, **KEYS)
    rc, result = call("ADD", c, ns_path(netns), tmp_path)
    assert rc == 0, result
    vf_line = next(line for line in ip_show(pf.netdev).splitlines() if f"vf {vf.index} " in line)
    assert "02:00:00:00:5a:01" in vf_line and "vlan 100, qos 2" in vf_line, vf_line
    assert "max_tx_rate 100Mbps" in vf_line and "spoof checking off" in vf_line, vf_line
    assert "trust on" in vf_line, vf_line
    pod_view = ip_show("net1", netns)
    assert "link/ether 02:00:00:00:5a:01" in pod_view and f"parentdev {vf.address}" in pod_view
    assert result["interfaces"][0]["mac"] == "02:00:00:00:5a:01"
    assert result["ips"][0]["address"].startswith("10.77.0.")
    assert call("CHECK", {**c, "prevResult": result}, ns_path(netns), tmp_path)[0] == 0
    assert call("DEL", c, ns_path(netns), tmp_path)[0] == 0
    assert vf.netdev == netdev  # back in the host under its own name
    assert (ip_show(pf.netdev), ip_show(netdev)) == before


def test_a_vf_that_was_up_comes_back_up_with_carrier(pf_up_with_vfs: Any, netns: str,
                                                     tmp_path: Path) -> None:
    pf, vfs = pf_up_with_vfs
    vf = vfs[3]
    netdev = vf.netdev
    link_with_carrier(netdev)
    before = ip_show(pf.netdev), ip_show(netdev)
    c = conf(vf.address, tmp_path, mac="02:00:00:00:5a:04", vlan=7, mtu=1400)
    assert call("ADD", c, ns_path(netns), tmp_path)[0] == 0
    assert "mtu 1400" in ip_show("net1", netns)
    assert call("DEL", c, ns_path(netns), tmp_path)[0] == 0
    hw.wait_for(lambda: hw.read_carrier(netdev), what=f"carrier back on {netdev}", timeout=30)
    assert (ip_show(pf.netdev), ip_show(netdev)) == before


def test_del_after_netns_deleted_on_a_real_vf(pf_with_vfs: Any, tmp_path: Path) -> None:
    pf, vfs = pf_with_vfs
    vf = vfs[1]
    netdev = vf.netdev
    before = ip_show(pf.netdev), ip_show(netdev)
    name = unique("st-ns-")
    subprocess.run(["ip", "netns", "add", name], check=True)
    c = conf(vf.address, tmp_path, mac="02:00:00:00:5a:02", vlan=42)
    try:
        assert call("ADD", c, ns_path(name), tmp_path)[0] == 0
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)
    # the kernel returns the VF to the host under the pod's name, closed (an igbvf reset)
    assert call("DEL", c, ns_path(name), tmp_path)[0] == 0
    assert (ip_show(pf.netdev), ip_show(netdev)) == before
    assert call("DEL", c, ns_path(name), tmp_path)[0] == 0  # idempotent


def test_dpdk_mode_on_a_vfio_bound_vf(pf_with_vfs: Any, netns: str, tmp_path: Path) -> None:
    pf, vfs = pf_with_vfs
    vf = vfs[2]
    if not Path("/sys/bus/pci/drivers/vfio-pci").exists():
        pytest.skip("vfio-pci is not available in this testbed kernel")
    before = ip_show(pf.netdev)
    hw.bind_driver(vf, "vfio-pci")
    assert vf.iommu_group is not None and Path(f"/dev/vfio/{vf.iommu_group}").exists()
    c = conf(vf.address, tmp_path, vlan=30, spoofchk="off", mac="02:00:00:00:5a:03")
    rc, result = call("ADD", c, ns_path(netns), tmp_path)
    assert rc == 0, result
    assert result["interfaces"][0]["pciID"] == vf.address
    assert result["interfaces"][0]["mac"] == "02:00:00:00:5a:03"
    vf_line = next(line for line in ip_show(pf.netdev).splitlines() if f"vf {vf.index} " in line)
    assert "vlan 30" in vf_line and "02:00:00:00:5a:03" in vf_line, vf_line
    assert call("CHECK", {**c, "prevResult": result}, ns_path(netns), tmp_path)[0] == 0
    assert call("DEL", c, ns_path(netns), tmp_path)[0] == 0
    assert ip_show(pf.netdev) == before
    assert vf.driver == "vfio-pci"  # DEL leaves the DPDK binding to whoever made it
