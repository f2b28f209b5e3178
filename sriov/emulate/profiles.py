"""NIC profiles for the emulated sysfs tree: what real SR-IOV NICs look like in sysfs.

Pure data. Each :class:`NicProfile` carries the PCI IDs, drivers and SR-IOV routing
parameters (``sriov_offset`` / ``sriov_stride``) that the real device reports, so a
tree built from it is laid out like the real hardware:

- Intel X710 (``8086:1572``, i40e; VFs ``8086:154c``, iavf). The 700 series exposes
  up to 128 VFs per device; a dual-port X710-DA2 reports ``sriov_totalvfs`` 64 per
  port (a quad-port card reports 32). VFs of port 0 start at ``<bus>:02.0`` (offset
  16, stride 1), the next port's VFs follow contiguously.
- Mellanox ConnectX-5 (``15b3:1017``, mlx5_core; VFs ``15b3:1018``, mlx5_core). The
  VF count is firmware-configured (``mlxconfig NUM_OF_VFS``, up to 127); 8 is a common
  setting and our default. VFs follow the PFs on the same device (offset 2, stride 1).
  RDMA: PF and every VF carry an ``infiniband/mlx5_<n>`` directory.
- Intel 82576 (``8086:10c9``, igb; VFs ``8086:10ca``, igbvf). 7 VFs per port; the VFs
  of both ports interleave at ``<bus>:10.x`` (offset 128, stride 2), so VF addresses
  are not contiguous.

Imports nothing outside :mod:`sriov.types`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import MappingProxyType

from sriov.types import LinkType


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class NicProfile:
    """How one NIC model appears in sysfs."""

    name: str
    """Short name used by ``sriovctl emulate --profile`` (``x710``, ``cx5``, ``igb``)."""
    model: str
    """Human-readable model, for logs and docs."""
    vendor_id: str
    """Four lower-case hex digits without ``0x``."""
    pf_device_id: str
    vf_device_id: str
    pf_driver: str
    vf_driver: str
    link_type: LinkType
    rdma: bool
    """PF and VFs expose ``infiniband/<dev>`` directories (RoCE / IB capable)."""
    rdma_prefix: str = "mlx5_"
    max_vfs: int
    """Default ``sriov_totalvfs`` per PF."""
    vf_offset: int
    """``sriov_offset`` of function 0 (routing-ID distance from the PF to VF 0)."""
    vf_stride: int
    """``sriov_stride``: routing-ID distance between consecutive VFs."""
    pci_class: str = "0x020000"
    """``class`` file contents (Ethernet controller)."""

    def offset_for(self, pf_function: int, total_vfs: int) -> int:
        """``sriov_offset`` of the PF at PCI function ``pf_function``.

        With stride 1 the ports' VF ranges follow each other; with a larger stride
        (82576) the ports interleave and every port reports the same offset.
        """
        if self.vf_stride > 1:
            return self.vf_offset
        return self.vf_offset + pf_function * (total_vfs - 1)


INTEL_X710 = NicProfile(
    name="x710",
    model="Intel Ethernet Controller X710 for 10GbE SFP+",
    vendor_id="8086",
    pf_device_id="1572",
    vf_device_id="154c",
    pf_driver="i40e",
    vf_driver="iavf",
    link_type=LinkType.ETHER,
    rdma=False,
    max_vfs=64,
    vf_offset=16,
    vf_stride=1,
)

MELLANOX_CX5 = NicProfile(
    name="cx5",
    model="Mellanox MT27800 Family [ConnectX-5]",
    vendor_id="15b3",
    pf_device_id="1017",
    vf_device_id="1018",
    pf_driver="mlx5_core",
    vf_driver="mlx5_core",
    link_type=LinkType.ETHER,
    rdma=True,
    max_vfs=8,
    vf_offset=2,
    vf_stride=1,
)

INTEL_82576 = NicProfile(
    name="igb",
    model="Intel 82576 Gigabit Network Connection",
    vendor_id="8086",
    pf_device_id="10c9",
    vf_device_id="10ca",
    pf_driver="igb",
    vf_driver="igbvf",
    link_type=LinkType.ETHER,
    rdma=False,
    max_vfs=7,
    vf_offset=128,
    vf_stride=2,
)

MELLANOX_BF2 = NicProfile(
    name="bf2",
    model="Mellanox MT42822 BlueField-2 integrated ConnectX-6 Dx network controller",
    vendor_id="15b3",
    pf_device_id="a2d6",
    vf_device_id="101e",
    pf_driver="mlx5_core",
    vf_driver="mlx5_core",
    link_type=LinkType.ETHER,
    rdma=True,
    max_vfs=16,
    vf_offset=2,
    vf_stride=1,
)
"""ConnectX-6 Dx class NIC with subfunctions (``mlx5_core.sf.<n>``), upstream's ``bf2_sf``
example (``15b3:a2d6``)."""

INTEL_N3000_FEC = NicProfile(
    name="n3000",
    model="Intel FPGA Programmable Acceleration Card N3000 for Networking (FEC)",
    vendor_id="8086",
    pf_device_id="0d8f",
    vf_device_id="0d90",
    pf_driver="pci-pf-stub",
    vf_driver="vfio-pci",
    link_type=LinkType.UNKNOWN,
    rdma=False,
    max_vfs=8,
    vf_offset=1,
    vf_stride=1,
    pci_class="0x120000",
)
"""An accelerator (PCI class 0x12, "processing accelerators"): upstream's ``intel_fpga``
example selects its VFs ``8086:0d90``. Intel QAT (``37c8``/``37c9``) reports class
0x0b40 (co-processor), so upstream's accelerator pools never see it; we follow that."""

VIRTIO_NET = NicProfile(
    name="virtio",
    model="Red Hat Virtio 1.0 network device",
    vendor_id="1af4",
    pf_device_id="1041",
    vf_device_id="",
    pf_driver="virtio-pci",
    vf_driver="",
    link_type=LinkType.ETHER,
    rdma=False,
    max_vfs=0,
    vf_offset=0,
    vf_stride=0,
)
"""A VM's NIC without SR-IOV (``add_nic`` only): netdev under ``<pci>/virtioN/net/``."""

PROFILES: Mapping[str, NicProfile] = MappingProxyType(
    {p.name: p for p in (INTEL_X710, MELLANOX_CX5, INTEL_82576, MELLANOX_BF2)}
)
"""SR-IOV NIC profiles ``sriovctl emulate up --profile`` accepts, by name."""


def profile_for_vf(vendor_id: str, vf_device_id: str) -> NicProfile | None:
    """The profile whose VFs have these IDs (used when VFs are added to an existing tree)."""
    return next(
        (p for p in (*PROFILES.values(), INTEL_N3000_FEC)
         if p.vendor_id == vendor_id and p.vf_device_id == vf_device_id),
        None,
    )
