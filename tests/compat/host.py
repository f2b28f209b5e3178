"""The emulated node every corpus case runs against (written once, read by every case).

| PF | netdev | NIC | NUMA | VFs (index: address, driver) |
|--------------|------------|-------|------|--------------------------------------|
| 0000:3b:00.0 | ens785f0 | X710 | 0 | 0-2: 0000:3b:02.0-2 iavf, 3: 0000:3b:02.3 vfio-pci |
| 0000:3b:00.1 | ens785f1 | X710 | 0 | 0-3: 0000:3b:0a.0-3 iavf |
| 0000:af:00.0 | enp175s0f0 | CX-5 | 1 | 0-1: 0000:af:00.2-3 mlx5_core, RDMA |
"""

from __future__ import annotations

from pathlib import Path

from sriov.emulate.profiles import INTEL_X710, MELLANOX_CX5
from sriov.emulate.tree import PfSpec, SysfsTreeBuilder

PFS = (
    PfSpec(address="0000:3b:00.0", ifname="ens785f0", profile=INTEL_X710, num_vfs=4,
           numa_node=0, vf_ifnames=("ens785f0v0", "ens785f0v1", "ens785f0v2", None),
           vf_drivers={3: "vfio-pci"},
           vf_addresses=("0000:3b:02.0", "0000:3b:02.1", "0000:3b:02.2", "0000:3b:02.3")),
    PfSpec(address="0000:3b:00.1", ifname="ens785f1", profile=INTEL_X710, num_vfs=4,
           numa_node=0, vf_ifnames=("ens785f1v0", "ens785f1v1", "ens785f1v2", "ens785f1v3"),
           vf_addresses=("0000:3b:0a.0", "0000:3b:0a.1", "0000:3b:0a.2", "0000:3b:0a.3")),
    PfSpec(address="0000:af:00.0", ifname="enp175s0f0", profile=MELLANOX_CX5, num_vfs=2,
           numa_node=1, vf_ifnames=("enp175s0f0v0", "enp175s0f0v1"),
           vf_addresses=("0000:af:00.2", "0000:af:00.3")),
)


def build_node(root: Path) -> SysfsTreeBuilder:
    tree = SysfsTreeBuilder(root)
    for pf in PFS:
        tree.add_pf(pf)
    return tree
