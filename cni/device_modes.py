"""Which attachment mode serves a device: the one seam between device classes and CNI modes.

The device plugin hands out devices of several classes (:class:`sriov.types.DeviceClass`,
found by :meth:`sriov.sysfs.SysfsReader.device`); each class has one rule here that names the
mode (:data:`cni.plugin.MODE_REGISTRY`) serving a device of that class. A new class is one
mode module plus one :func:`register_class` line; nothing else in ``cni/`` branches on the
driver kind. See docs/cni.md "Device classes and modes".

========== ============================================== ==============================
class      driver                                         mode
========== ============================================== ==============================
vf         netdev driver (iavf, igbvf, mlx5_core, ...)    ``vf`` (netdev moved to pod)
vf         ``vfio-pci``, ``uio_pci_generic``, ``igb_uio`` ``dpdk`` (no netdev)
nic        netdev driver (virtio-net, a PF with 0 VFs)    ``nic`` (whole NIC moved)
nic        ``vfio-pci``/uio                               refused (nothing to attach)
sf / accel —                                              refused (see docs/cni.md)
========== ============================================== ==============================
"""

from __future__ import annotations

from collections.abc import Callable

from sriov.errors import DeviceNotFoundError
from sriov.types import DeviceClass, DriverKind, VirtualFunction

ModeRule = Callable[[VirtualFunction], str]
"""Returns the mode name for a device of its class, or raises a clear error."""


def is_dpdk(device: VirtualFunction) -> bool:
    """Bound to a userspace-I/O driver (vfio-pci, uio_pci_generic, igb_uio), as sriov-cni's
    ``IsDPDKMode`` (its list also counts the uio drivers): no netdev, DPDK mode."""
    return device.driver_kind in (DriverKind.VFIO, DriverKind.UIO)


def _vf_rule(vf: VirtualFunction) -> str:
    if is_dpdk(vf):
        return "dpdk"
    if vf.netdev or vf.driver_kind is DriverKind.KERNEL:
        return "vf"  # no netdev in the host: maybe in a pod; the VF mode tells busy/stale
    raise DeviceNotFoundError("VF netdev", vf.address,
                              "VF has neither a netdev nor a DPDK driver bound")


def _nic_rule(nic: VirtualFunction) -> str:
    if nic.driver_kind is DriverKind.KERNEL:
        return "nic"  # its netdev may be in a pod right now; the NIC mode tells busy/stale
    raise DeviceNotFoundError(
        "NIC netdev", nic.address,
        f"a NIC without SR-IOV is attached by moving its netdev; it is bound to "
        f"{nic.driver or 'no driver'} and has none")


CLASS_MODES: dict[DeviceClass, ModeRule] = {
    DeviceClass.VF: _vf_rule,
    DeviceClass.NIC: _nic_rule,
}


def register_class(device_class: DeviceClass, rule: ModeRule) -> None:
    """Serve ``device_class`` with the mode ``rule`` names (tests and future classes)."""
    CLASS_MODES[device_class] = rule


def mode_of(device: VirtualFunction) -> str:
    """The mode for ``device``; :class:`DeviceNotFoundError` (code 100) for a class the CNI
    does not attach."""
    rule = CLASS_MODES.get(device.device_class)
    if rule is None:
        raise DeviceNotFoundError(
            "attachable device", device.id,
            f"the CNI does not attach {device.device_class.value} devices "
            f"(attachable: {', '.join(c.value for c in CLASS_MODES)})")
    return rule(device)


__all__ = ["CLASS_MODES", "ModeRule", "is_dpdk", "mode_of", "register_class"]
