"""Pure pool logic: device lists with health and NUMA, and preferred allocation.

Nothing here touches the OS; carrier state arrives as a callable and the
inventory as values, so every rule is table-testable.

Health rules (documented in docs/device-plugin.md):
- a VF is ``Healthy`` iff its PF netdev has carrier, or the PF netdev is unknown
  (no way to tell, e.g. inside a VM); otherwise ``Unhealthy``;
- a VF that vanished (``sriov_numvfs`` lowered, hot-unplug) or whose driver no
  longer matches the pool's selectors is no longer in the pool's list at all, so
  kubelet drops it from capacity.
"""

from __future__ import annotations

import dataclasses
import enum
from collections import Counter
from collections.abc import Callable, Container, Iterable, Mapping, Sequence

from deviceplugin.errors import DevicePluginError
from sriov.devclass import AllocOptions
from sriov.types import IfName, PciAddress, VirtualFunction


class Health(enum.StrEnum):
    """Kubelet's health strings, case exact (v1beta1 constants)."""

    HEALTHY = "Healthy"
    UNHEALTHY = "Unhealthy"


class Policy(enum.StrEnum):
    """How GetPreferredAllocation places VFs across PFs."""

    SPREAD = "spread"  # fewest VFs per PF: survive one PF/cable failure
    PACK = "pack"  # fewest PFs: keep whole PFs free for others


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class PoolSpec:
    """What the device plugin needs to know about one configured resource pool."""

    prefix: str
    """Resource domain, e.g. ``intel.com``."""
    name: str
    """Resource name within the domain, e.g. ``sriov_netdevice``."""
    device_type: str = "netDevice"
    exclude_topology: bool = False
    is_rdma: bool = False
    additional_info: Mapping[str, Mapping[str, str]] = dataclasses.field(default_factory=dict)
    """``{"*" | <pci>: {key: value}}``; a per-address entry overrides ``"*"``."""

    @property
    def full_name(self) -> str:
        return f"{self.prefix}/{self.name}"

    def extra_info(self, pci: str) -> dict[str, str]:
        merged = dict(self.additional_info.get("*", {}))
        merged.update(self.additional_info.get(pci, {}))
        return merged


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class PoolDevice:
    """One advertised device: a VF and its current health."""

    vf: VirtualFunction
    """The device (a VF, NIC, accelerator or SF record)."""
    health: Health
    numa_node: int | None
    """``None`` when sysfs has no topology or the pool sets ``excludeTopology``."""
    options: AllocOptions = dataclasses.field(default_factory=AllocOptions)
    """What the selector object that claimed the device asks for (isRdma, vdpaType,
    needVhostNet), as upstream decides these per selector."""

    @property
    def id(self) -> str:
        return self.vf.id

    @property
    def need_vhost_net(self) -> bool:
        """Its owning selector object (the first that matched it) sets ``needVhostNet``."""
        return self.options.need_vhost_net

    @property
    def healthy(self) -> bool:
        return self.health is Health.HEALTHY


CarrierProbe = Callable[[IfName], bool | None]
"""Returns carrier of a netdev: True/False, or None when it cannot be read."""


def vf_health(vf: VirtualFunction, carrier: CarrierProbe) -> Health:
    if vf.pf_netdev is None:
        return Health.HEALTHY
    return Health.UNHEALTHY if carrier(vf.pf_netdev) is False else Health.HEALTHY


def build_devices(
    spec: PoolSpec, vfs: Iterable[VirtualFunction], carrier: CarrierProbe,
    options: Mapping[str, AllocOptions] | None = None, *,
    vhost_net: Container[str] = frozenset(),
) -> tuple[PoolDevice, ...]:
    """The pool's full device list, sorted by ID. ``options``: per device ID, from the
    selector object that claimed it (default: the pool's ``isRdma``, plus
    ``needVhostNet`` for the IDs in ``vhost_net``)."""
    def default(vf: VirtualFunction) -> AllocOptions:
        return AllocOptions(is_rdma=spec.is_rdma, need_vhost_net=vf.id in vhost_net)

    devices = (
        PoolDevice(
            vf=vf,
            health=vf_health(vf, carrier),
            numa_node=None if spec.exclude_topology else vf.numa_node,
            options=(options or {}).get(vf.id) or default(vf),
        )
        for vf in vfs
    )
    return tuple(sorted(devices, key=lambda d: d.id))


def preferred_allocation(
    devices: Mapping[str, PoolDevice],
    available: Sequence[str],
    must_include: Sequence[str],
    size: int,
    policy: Policy,
) -> list[str]:
    """Choose ``size`` device IDs out of ``available``, always keeping ``must_include``.

    1. NUMA: prefer the node(s) of the must-include devices, else the node with
       the most available devices (lowest node ID on a tie).
    2. Within that preference, ``spread`` picks the PF with the fewest chosen VFs,
       ``pack`` the PF with the most chosen (then most remaining) VFs.
    IDs unknown to the pool are ignored among ``available``; an unknown
    must-include ID or ``size`` smaller than ``must_include`` is an error.
    """
    if size < 0:
        raise DevicePluginError("allocation_size", f"must be >= 0, got {size}")
    chosen = list(dict.fromkeys(must_include))
    unknown = [i for i in chosen if i not in devices]
    if unknown:
        raise DevicePluginError("must_include_deviceIDs", f"unknown device IDs {unknown}")
    if len(chosen) > size:
        raise DevicePluginError(
            "allocation_size", f"{size} is smaller than must_include ({len(chosen)} IDs)"
        )
    taken = set(chosen)
    candidates = [devices[i] for i in dict.fromkeys(available) if i in devices and i not in taken]
    targets = _target_numa_nodes([devices[i] for i in chosen], candidates)
    per_pf = Counter(devices[i].vf.pf_address for i in chosen)
    remaining_per_pf = Counter(d.vf.pf_address for d in candidates)
    while len(chosen) < size and candidates:
        best = min(candidates, key=lambda d: _rank(d, targets, per_pf, remaining_per_pf, policy))
        candidates.remove(best)
        chosen.append(best.id)
        per_pf[best.vf.pf_address] += 1
        remaining_per_pf[best.vf.pf_address] -= 1
    return chosen


def _numa_key(device: PoolDevice) -> int:
    return -1 if device.numa_node is None else device.numa_node


def _target_numa_nodes(
    must: Sequence[PoolDevice], candidates: Sequence[PoolDevice]
) -> frozenset[int]:
    if must:
        return frozenset(_numa_key(d) for d in must)
    counts = Counter(_numa_key(d) for d in candidates)
    if not counts:
        return frozenset()
    best = max(counts.values())
    return frozenset({min(n for n, c in counts.items() if c == best)})


def _rank(
    device: PoolDevice,
    targets: frozenset[int],
    per_pf: Counter[PciAddress],
    remaining_per_pf: Counter[PciAddress],
    policy: Policy,
) -> tuple[int, int, int, str, str]:
    pf = device.vf.pf_address
    off_numa = 0 if _numa_key(device) in targets else 1
    if policy is Policy.SPREAD:
        return (off_numa, per_pf[pf], -remaining_per_pf[pf], pf, device.id)
    return (off_numa, -per_pf[pf], -remaining_per_pf[pf], pf, device.id)
