"""``sriovctl emulate up --classes``: one device of every class next to the SR-IOV PFs.

Added to the tree only (their netdevs have no veth behind them; the device plugin and
``sriovctl list`` see them exactly as on real hardware):

- RDMA char devices: every RDMA-capable profile (``cx5``, ``bf2``) always has them;
- with ``--profile bf2`` (ConnectX-6 Dx class: mlx5 SFs and mlx5_vdpa need it, a
  ConnectX-5 has neither): two SFs (``mlx5_core.sf.<n>``, sfnum 0 and 1, with netdev and
  RDMA) on PF 0, and a vDPA device bound to ``vhost_vdpa`` on the last kernel-bound VF of
  PF 0 (what ``vdpa dev add mgmtdev pci/<vf>`` gives);
- an accelerator: an N3000 FEC PF (``8086:0d8f``, class 0x12) with 2 VFs on vfio-pci;
- a virtio-net VM NIC (``1af4:1041``, no SR-IOV), netdev ``<pf-prefix>nic0``.

uio: bind any VF with ``sriovctl emulate bind <vf> uio_pci_generic``.
"""

from __future__ import annotations

from sriov import validate
from sriov.emulate.profiles import INTEL_N3000_FEC, VIRTIO_NET
from sriov.emulate.spec import EmulationState
from sriov.emulate.tree import PfSpec, SysfsTreeBuilder
from sriov.errors import EmulationError


def free_bus(state: EmulationState) -> int:
    """The first bus after every emulated PF's VFs."""
    used = [int(a.split(":")[1], 16) for a in
            [p.address for p in state.pfs] + [v.address for v in state.vfs]]
    bus = max(used, default=0x3A) + 2
    if bus + 2 > 0xFF:
        raise EmulationError("no free PCI bus left for the --classes devices")
    return bus


def add(tree: SysfsTreeBuilder, state: EmulationState) -> list[str]:
    """Add the showcase devices; returns one line per device for the user."""
    spec = state.spec
    lines: list[str] = []
    pf0 = state.pfs[0]
    if spec.profile.value == "bf2":
        for sfnum in (0, 1):
            name = tree.add_sf(pf0.address, sfnum,
                               validate.ifname(f"{spec.pf_prefix}0s{sfnum}"))
            lines.append(f"SF {name} (sfnum {sfnum}) on {pf0.address}")
    kernel_vfs = [v for v in state.vfs if v.pf == 0 and v.driver not in ("vfio-pci", "")]
    if kernel_vfs and spec.profile.value == "bf2":
        name = tree.add_vdpa(kernel_vfs[-1].address, "vhost_vdpa")
        lines.append(f"vDPA {name} (vhost_vdpa) on VF {kernel_vfs[-1].address}")
    bus = free_bus(state)
    accel = f"0000:{bus:02x}:00.0"
    built = tree.add_pf(PfSpec(address=accel, ifname=None, profile=INTEL_N3000_FEC, num_vfs=2))
    lines.append(f"accelerator {accel} (8086:0d8f) with VFs {', '.join(built.vf_addresses)}"
                 " on vfio-pci")
    nic = f"0000:{bus + 2:02x}:00.0"
    tree.add_nic(nic, VIRTIO_NET, validate.ifname(f"{spec.pf_prefix}nic0"))
    lines.append(f"virtio-net NIC {nic} (1af4:1041), netdev {spec.pf_prefix}nic0")
    return lines
