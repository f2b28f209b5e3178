"""VF/DPDK mode against a real igb PF in the QEMU testbed (skips elsewhere, reason printed).

ADD/CHECK/DEL with vlan/qos/mac/spoofchk/trust/max_tx_rate on a real VF, exact restore
(full ``ip -d link show`` of PF and VF before/after), netns-gone DEL, DPDK on a vfio-bound VF.
"""

from __future__ import annotations

import io
import json
import re
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cni.main import Runtime, run
from tests.vm import hw

KEYS = {"vlan": 100, "vlanQoS": 2, "mac": "02:00:00:00:5a:01", "spoofchk": "off", "trust": "on",
        "max_tx_rate": 100}


def ip_show(name: str) -> str:
    out = subprocess.run(["ip", "-d", "link", "show", "dev", name], capture_output=True, text=True,
                         check=True).stdout
    return re.sub(r"\s+(state \w+|<[^>]*>)", "", out)  # carrier flips while a VF resets


@pytest.fixture
def netns() -> Iterator[str]:
    name = "st-ns-" + secrets.token_hex(3)
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield f"/var/run/netns/{name}"
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def call(command: str, conf: dict[str, Any], netns: str, tmp: Path, cid: str = "vm1") -> tuple[int, Any]:
    env = {"CNI_COMMAND": command, "CNI_CONTAINERID": cid, "CNI_NETNS": netns, "CNI_IFNAME": "net1",
           "CNI_PATH": "/usr/lib/cni", "SRIOV_CNI_STATE_DIR": str(tmp / "state")}
    out = io.StringIO()
    rc = run(env, json.dumps(conf).encode(), out, io.StringIO(), runtime=Runtime.from_env(env), timeout=0)
    return rc, json.loads(out.getvalue()) if out.getvalue().strip() else None


def conf(pci: str, tmp: Path, **keys: Any) -> dict[str, Any]:
    return {"cniVersion": "1.1.0", "name": "st-vm", "type": "sriov", "deviceID": pci, **keys,
            "ipam": {"type": "host-local", "dataDir": str(tmp / "ipam"),
                     "ranges": [[{"subnet": "10.77.0.0/24"}]]}}


def test_add_check_del_on_a_real_vf_restores_pf_and_vf(pf_up_with_vfs: Any, netns: str,
                                                       tmp_path: Path) -> None:
    pf, vfs = pf_up_with_vfs
    vf = vfs[0]
    netdev = vf.netdev
    before = ip_show(pf.netdev), ip_show(netdev)
    c = conf(vf.address, tmp_path, **KEYS)
    rc, result = call("ADD", c, netns, tmp_path)
    assert rc == 0, result
    pf_view = ip_show(pf.netdev)
    assert "vlan 100, qos 2" in pf_view and "02:00:00:00:5a:01" in pf_view
    assert "spoof checking off" in pf_view and "trust on" in pf_view
    assert call("CHECK", {**c, "prevResult": result}, netns, tmp_path)[0] == 0
    assert call("DEL", c, netns, tmp_path)[0] == 0
    hw.wait_for(lambda: vf.netdev == netdev or None, what=f"{netdev} back in the host")
    assert (ip_show(pf.netdev), ip_show(netdev)) == before


def test_del_after_netns_deleted_on_a_real_vf(pf_with_vfs: Any, tmp_path: Path) -> None:
    pf, vfs = pf_with_vfs
    vf = vfs[1]
    netdev = vf.netdev
    before = ip_show(netdev)
    name = "st-ns-" + secrets.token_hex(3)
    subprocess.run(["ip", "netns", "add", name], check=True)
    c = conf(vf.address, tmp_path, mac="02:00:00:00:5a:02")
    try:
        assert call("ADD", c, f"/var/run/netns/{name}", tmp_path)[0] == 0
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)
    assert call("DEL", c, f"/var/run/netns/{name}", tmp_path)[0] == 0
    assert ip_show(netdev) == before


def test_dpdk_mode_on_a_vfio_bound_vf(pf_with_vfs: Any, netns: str, tmp_path: Path) -> None:
    pf, vfs = pf_with_vfs
    vf = vfs[2]
    if not Path("/sys/bus/pci/drivers/vfio-pci").exists():
        pytest.skip("vfio-pci is not available in this testbed kernel")
    before = ip_show(pf.netdev)
    hw.bind_driver(vf, "vfio-pci")
    c = conf(vf.address, tmp_path, vlan=30, spoofchk="off")
    rc, result = call("ADD", c, netns, tmp_path)
    assert rc == 0, result
    assert result["interfaces"][0]["pciID"] == vf.address
    assert "vlan 30" in ip_show(pf.netdev)
    assert call("DEL", c, netns, tmp_path)[0] == 0
    assert ip_show(pf.netdev) == before
