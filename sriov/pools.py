"""Resource pools: the sriov-network-device-plugin config format, and the assignment of
discovered VFs to pools.

A config upstream accepts is accepted and means the same (decoded as Go's encoding/json
does: keys case-insensitive, a repeated key's last value wins, unknown keys ignored).
What upstream rejects is an error; what it accepts but looks wrong (unknown keys, values
that can never match) is a warning with its JSON path, or an error with ``strict=True``
(``--strict-config``). Every error in a file is collected and reported in one
:class:`PoolConfigProblems` so users fix a config in one pass. :func:`select` is pure:
first pool in config order that matches claims a VF, and every VF left out gets a
reason. The only I/O is :func:`load_pool_config`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import types
from collections.abc import Mapping
from typing import Self

from sriov import gojson
from sriov.errors import PoolConfigError
from sriov.pool_parse import Problems, parse_resource_list
from sriov.selectors import DeviceType, SelectorSet, VdpaType
from sriov.types import DeviceClass, Inventory, PciAddress, VirtualFunction

__all__ = [
    "DEFAULT_RESOURCE_PREFIX",
    "DeviceType",
    "PoolConfig",
    "PoolConfigProblems",
    "ResourcePool",
    "Selection",
    "SelectorSet",
    "VdpaType",
    "load_pool_config",
    "parse_pool_config",
    "select",
]

log = logging.getLogger(__name__)

DEFAULT_RESOURCE_PREFIX = "intel.com"
"""Upstream's ``-resource-prefix`` default."""


class PoolConfigProblems(PoolConfigError):
    """Every problem found in one config; ``problems`` holds one error per field."""

    def __init__(self, problems: tuple[PoolConfigError, ...]) -> None:
        self.problems = problems
        lines = "\n".join(str(p) for p in problems)
        head = "1 problem" if len(problems) == 1 else f"{len(problems)} problems"
        super().__init__(problems[0].field, f"{head} in the pool config:\n{lines}")

    def __str__(self) -> str:
        return self.reason


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ResourcePool:
    """One entry of ``resourceList``."""

    resource_name: str
    resource_prefix: str
    """Resolved: from the config, else the default prefix given to the parser."""
    prefix_from_config: bool = False
    device_type: DeviceType = DeviceType.NET_DEVICE
    exclude_topology: bool = False
    selectors: tuple[SelectorSet, ...] = (SelectorSet(),)
    additional_info: Mapping[str, Mapping[str, str]] = dataclasses.field(
        default_factory=lambda: types.MappingProxyType({}))
    """``"*"`` or a PCI address -> extra key/values for the device plugin's ``_INFO`` env."""

    @property
    def full_name(self) -> str:
        return f"{self.resource_prefix}/{self.resource_name}"

    @property
    def need_vhost_net(self) -> bool:
        """Whether *some* selector object sets it (it applies per selector: :meth:`owner`)."""
        return any(s.need_vhost_net for s in self.selectors)

    @property
    def is_rdma(self) -> bool:
        return any(s.is_rdma for s in self.selectors)

    def info_for(self, pci: str) -> dict[str, str]:
        """additionalInfo for one device: the ``"*"`` entry overridden by the per-address one."""
        return {**self.additional_info.get("*", {}), **self.additional_info.get(pci, {})}

    def owner(self, vf: VirtualFunction) -> SelectorSet | None:
        """The first selector object that matches ``vf`` (upstream: its ``needVhostNet``
        is the one that applies to the device)."""
        return next((s for s in self.selectors if s.match(vf)[0]), None)

    def match(self, vf: VirtualFunction) -> tuple[bool, str]:
        """Try the selector objects in order; the first that matches wins."""
        index, reason = self.match_index(vf)
        return index is not None, reason

    def match_index(self, vf: VirtualFunction) -> tuple[int | None, str]:
        """The index of the first selector object that matches (``None``), and why."""
        misses: list[str] = []
        for i, selector in enumerate(self.selectors):
            ok, reason = selector.match(vf)
            if ok:
                return i, f"selectors[{i}]: {reason}"
            misses.append(reason)
        if len(misses) == 1:
            return None, misses[0]
        return None, ", ".join(f"selectors[{i}] ({m})" for i, m in enumerate(misses))


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class PoolConfig:
    pools: tuple[ResourcePool, ...] = ()
    """In config order (which decides who claims a VF). May be empty: callers decide."""
    warnings: tuple[str, ...] = ()
    """Accepted but doubtful input (e.g. a key spelled ``IsRdma``)."""

    @classmethod
    def parse(cls, obj: object, *, default_prefix: str = DEFAULT_RESOURCE_PREFIX,
              strict: bool = False) -> Self:
        """Validate a decoded JSON document. Raises :class:`PoolConfigProblems`.

        ``strict`` turns the warnings about input upstream accepts (unknown keys, values
        that never match) into errors; case-spelling notes stay warnings."""
        problems = Problems(strict=strict)
        entries = parse_resource_list(obj, problems)
        pools = tuple(
            ResourcePool(
                resource_name=e.name,
                resource_prefix=e.prefix or default_prefix,
                prefix_from_config=e.prefix is not None,
                device_type=e.device_type,
                exclude_topology=e.exclude_topology,
                selectors=e.selectors,
                additional_info=types.MappingProxyType(
                    {k: types.MappingProxyType(v) for k, v in e.additional_info.items()}),
            )
            for e in entries
        )
        _check_unique(pools, tuple(e.index for e in entries), problems)
        if problems.errors:
            raise PoolConfigProblems(tuple(problems.errors))
        for warning in problems.warnings:
            log.warning("pool config: %s", warning)
        return cls(pools=pools, warnings=tuple(problems.warnings))

    def pool(self, full_name: str) -> ResourcePool | None:
        return next((p for p in self.pools if p.full_name == full_name), None)

    def with_default_prefix(self, prefix: str) -> PoolConfig:
        """Re-resolve pools that did not set ``resourcePrefix`` themselves."""
        pools = tuple(p if p.prefix_from_config else dataclasses.replace(p, resource_prefix=prefix)
                      for p in self.pools)
        problems = Problems()
        _check_unique(pools, tuple(range(len(pools))), problems)
        if problems.errors:
            raise PoolConfigProblems(tuple(problems.errors))
        return dataclasses.replace(self, pools=pools)


def _check_unique(pools: tuple[ResourcePool, ...], indexes: tuple[int, ...],
                  problems: Problems) -> None:
    first_index: dict[str, int] = {}
    for i, pool in zip(indexes, pools, strict=True):
        if pool.full_name in first_index:
            problems.add(f"resourceList[{i}].resourceName",
                         f"{pool.full_name!r} is already defined by "
                         f"resourceList[{first_index[pool.full_name]}]")
        else:
            first_index[pool.full_name] = i


def parse_pool_config(text: str | bytes, *, default_prefix: str = DEFAULT_RESOURCE_PREFIX,
                      strict: bool = False) -> PoolConfig:
    """Parse config file contents (JSON). Raises :class:`PoolConfigError`."""
    try:
        obj = gojson.loads(text)
    except json.JSONDecodeError as e:
        raise PoolConfigError("", f"not valid JSON: line {e.lineno} column {e.colno}: {e.msg}") \
            from e
    except UnicodeDecodeError as e:
        raise PoolConfigError("", f"not UTF-8 text: {e.reason}") from e
    except RecursionError as e:  # json's C scanner recurses once per nesting level
        raise PoolConfigError("", "not valid JSON: nested too deeply") from e
    return PoolConfig.parse(obj, default_prefix=default_prefix, strict=strict)


def load_pool_config(path: str | os.PathLike[str], *,
                     default_prefix: str = DEFAULT_RESOURCE_PREFIX,
                     strict: bool = False) -> PoolConfig:
    """Read and parse a config file. Unreadable files are a :class:`PoolConfigError` too."""
    try:
        with open(path, "rb") as f:
            text = f.read()
    except OSError as e:
        raise PoolConfigError(str(path), f"cannot read: {e.strerror or e}") from e
    try:
        return parse_pool_config(text, default_prefix=default_prefix, strict=strict)
    except PoolConfigProblems:
        raise
    except PoolConfigError as e:
        raise PoolConfigError(str(path), e.reason) from e


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Selection:
    """Which device went to which pool, and why every other device went nowhere.

    Keys are device IDs (:attr:`~sriov.types.VirtualFunction.id`): the PCI address, or
    an SF's auxiliary name.
    """

    pools: Mapping[str, tuple[VirtualFunction, ...]]
    """Full pool name -> its devices sorted by ID; every configured pool, in config order."""
    claimed_by: Mapping[PciAddress, str]
    """Device ID -> full name of the pool that claimed it."""
    reasons: Mapping[PciAddress, str]
    """Device ID -> why no pool selected it (one line per pool)."""
    warnings: tuple[str, ...] = ()
    selector_of: Mapping[str, int] = dataclasses.field(
        default_factory=lambda: types.MappingProxyType({}))
    """Device ID -> index of the selector object that claimed it (per-selector options
    such as ``isRdma``, ``vdpaType`` and ``needVhostNet`` follow it, as upstream)."""
    vhost_net: frozenset[PciAddress] = frozenset()
    """Devices whose owning selector object (first match in their pool) sets ``needVhostNet``."""

    def pool_of(self, address: str) -> str | None:
        return self.claimed_by.get(PciAddress(address))

    def selector(self, config: PoolConfig, device_id: str) -> SelectorSet | None:
        """The selector object that claimed a device."""
        pool = config.pool(self.claimed_by.get(PciAddress(device_id), ""))
        index = self.selector_of.get(device_id)
        return pool.selectors[index] if pool is not None and index is not None else None


def candidates(device_type: DeviceType, inventory: Inventory
               ) -> tuple[list[VirtualFunction], dict[str, str]]:
    """The devices a pool of ``device_type`` may select, and the excluded ones with why.

    As upstream: netDevice = network VFs and NICs without VFs (a PF with VFs is not a
    device), minus devices with an IPv4 default route; accelerator = class 0x12
    functions; auxNetDevice = auxiliary devices (SFs) with a netdev. Every class drops
    devices without a driver (upstream's discovery fails on the missing ``driver`` link;
    an SF's driver is its parent's).
    """
    wanted = CANDIDATE_CLASSES[device_type]
    found: list[VirtualFunction] = []
    excluded: dict[str, str] = {}
    for device in inventory.devices:
        if device.device_class not in wanted:
            continue
        if not device.driver:
            excluded[device.id] = ("not bound to a driver (no driver link): never pooled, "
                                   "as upstream; bind a driver and the next scan takes it")
            continue
        if device_type is DeviceType.NET_DEVICE and device.default_route:
            excluded[device.id] = (f"{device.netdev} has an IPv4 default route (the host's "
                                   "own link is never pooled)")
            continue
        found.append(device)
    return sorted(found, key=lambda d: d.id), excluded


CANDIDATE_CLASSES: Mapping[DeviceType, frozenset[DeviceClass]] = types.MappingProxyType({
    DeviceType.NET_DEVICE: frozenset({DeviceClass.VF, DeviceClass.NIC}),
    DeviceType.ACCELERATOR: frozenset({DeviceClass.ACCELERATOR}),
    DeviceType.AUX_NET_DEVICE: frozenset({DeviceClass.AUX_SF}),
})


_WHAT = {DeviceClass.VF: "VF", DeviceClass.NIC: "NIC", DeviceClass.ACCELERATOR: "accelerator",
         DeviceClass.AUX_SF: "SF"}


def select(config: PoolConfig, inventory: Inventory, *,
           default_prefix: str | None = None) -> Selection:
    """Assign devices to pools: first matching pool in config order claims a device, and
    within it the first matching selector object (as upstream).

    ``default_prefix`` re-resolves pools without their own ``resourcePrefix``; ``None``
    keeps the prefix the config was parsed with. Each pool sees the candidates of its
    ``deviceType`` (:func:`candidates`; docs/pools.md).
    """
    if default_prefix is not None:
        config = config.with_default_prefix(default_prefix)
    members: dict[str, list[VirtualFunction]] = {p.full_name: [] for p in config.pools}
    claimed_by: dict[str, str] = {}
    selector_of: dict[str, int] = {}
    reasons: dict[str, str] = {}
    warnings = list(config.warnings)
    for device_type in DeviceType:
        pools = [p for p in config.pools if p.device_type is device_type]
        devices, excluded = candidates(device_type, inventory)
        if not pools:
            for device in devices:
                if device.device_class in (DeviceClass.VF,):
                    reasons.setdefault(device.id, "no netDevice pool is configured")
            continue
        reasons.update((i, r) for i, r in excluded.items() if i not in claimed_by)
        for device in devices:
            misses: list[str] = []
            for pool in pools:
                index, reason = pool.match_index(device)
                owner = claimed_by.get(device.id)
                if index is not None and owner is None:
                    claimed_by[device.id] = pool.full_name
                    selector_of[device.id] = index
                    members[pool.full_name].append(device)
                elif index is not None:
                    warnings.append(f"{_WHAT[device.device_class]} {device.id} also matches "
                                    f"{pool.full_name} but {owner} claimed it first")
                else:
                    misses.append(f"{pool.full_name}: {reason}")
            if device.id not in claimed_by:
                reasons[device.id] = "\n".join(misses)
    return Selection(
        pools=types.MappingProxyType({k: tuple(v) for k, v in members.items()}),
        claimed_by=types.MappingProxyType(claimed_by),  # type: ignore[arg-type]
        reasons=types.MappingProxyType(reasons),  # type: ignore[arg-type]
        warnings=tuple(warnings),
        selector_of=types.MappingProxyType(selector_of),
        vhost_net=frozenset(PciAddress(i) for i, n in selector_of.items()
                            if config.pool(claimed_by[i]).selectors[n].need_vhost_net),  # type: ignore[union-attr]
    )
