"""Rendering an :class:`~sriov.types.Inventory` for people (a table) and for tools (JSON).

Pure: no I/O. ``sriovctl list`` and the demo use :func:`format_inventory`; the JSON
document of :func:`inventory_to_json` is stable and documented in docs/discovery.md
(``schemaVersion`` changes when a key is renamed or removed; new keys may appear).
"""

from __future__ import annotations

from collections.abc import Sequence

from sriov import devclass
from sriov.types import DriverKind, Inventory, PhysicalFunction, VirtualFunction

SCHEMA_VERSION = 1
_VF_INDENT = "    "


def _dash(value: object) -> str:
    return "-" if value is None else str(value)


def vf_netdev_label(vf: VirtualFunction) -> str:
    """The VF's netdev, or what a user should read instead: ``(vfio)``, ``(uio)``, ``-``."""
    if vf.netdev:
        return vf.netdev
    kind = vf.driver_kind
    if kind is DriverKind.VFIO:
        return "(vfio)"
    if kind is DriverKind.UIO:
        return "(uio)"
    return "-"  # unbound, or the netdev lives in another netns (a pod)


def _table(rows: Sequence[Sequence[str]], indent: str = "") -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [indent + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
            for r in rows]


def _netdevs(pf: PhysicalFunction) -> list[str]:
    """The PF's name first (a switchdev PF's uplink, ahead of its representors)."""
    return sorted(pf.netdevs, key=lambda n: n != pf.netdev)


def _pf_row(pf: PhysicalFunction) -> list[str]:
    return [pf.address, _dash(pf.driver), ",".join(_netdevs(pf)) or "-",
            f"{pf.num_vfs}/{pf.total_vfs}", _dash(pf.numa_node), str(pf.link_type),
            _dash(pf.mtu), f"{pf.vendor_id}:{pf.device_id}"]


def _chars(device: VirtualFunction) -> tuple[str, ...]:
    return devclass.char_devices(device, lambda _: True)


def _chars_short(device: VirtualFunction) -> str:
    """``infiniband/uverbs1,vfio/9``: the table drops the common ``/dev/``."""
    return ",".join(p.removeprefix("/dev/") for p in _chars(device)) or "-"


def _vf_row(vf: VirtualFunction) -> list[str]:
    return [str(vf.index), vf.address, _dash(vf.driver), vf_netdev_label(vf),
            _dash(vf.iommu_group), _dash(vf.numa_node), "yes" if vf.is_rdma else "no",
            f"{vf.vendor_id}:{vf.device_id}", devclass.class_label(vf), _chars_short(vf)]


def _other_row(device: VirtualFunction) -> list[str]:
    parent = "-" if device.pf_address == device.address and not device.aux_name else (
        f"{device.pf_address}#{device.index}")
    return [device.id, devclass.class_label(device), _dash(device.driver),
            vf_netdev_label(device), _dash(device.numa_node),
            f"{device.vendor_id}:{device.device_id}", parent, _chars_short(device)]


def _group_vfs(inv: Inventory) -> dict[str, list[VirtualFunction]]:
    by_pf: dict[str, list[VirtualFunction]] = {}
    for vf in inv.vfs:
        by_pf.setdefault(vf.pf_address, []).append(vf)
    return by_pf


def format_inventory(inv: Inventory) -> str:
    """A readable table: each PF, its VFs indented below it, then skipped devices."""
    lines: list[str] = []
    if not inv.pfs:
        lines.append("No SR-IOV network PFs found.")
    by_pf = _group_vfs(inv)
    pf_header = ["PF", "DRIVER", "NETDEV", "VFS", "NUMA", "LINK", "MTU", "ID"]
    vf_header = ["VF", "ADDRESS", "DRIVER", "NETDEV", "IOMMU", "NUMA", "RDMA", "ID", "CLASS",
                 "CHARDEVS"]
    for n, pf in enumerate(inv.pfs):
        if n:
            lines.append("")
        lines.extend(_table([pf_header, _pf_row(pf)]))
        vfs = by_pf.get(pf.address, [])
        if vfs:
            lines.extend(_table([vf_header, *(_vf_row(v) for v in vfs)], _VF_INDENT))
        else:
            lines.append(f"{_VF_INDENT}(no VFs; sriov_numvfs={pf.num_vfs})")
    if inv.others:
        lines.append("")
        lines.append("Other poolable devices (NICs without VFs, accelerators, SFs):")
        header = ["DEVICE", "CLASS", "DRIVER", "NETDEV", "NUMA", "ID", "PARENT", "CHARDEVS"]
        lines.extend(_table([header, *(_other_row(d) for d in inv.others)], "  "))
    if inv.skipped:
        lines.append("")
        lines.append(f"Skipped {len(inv.skipped)} device(s):")
        lines.extend(f"  {s.path}: {s.reason}" for s in inv.skipped)
    return "\n".join(lines) + "\n"


def _vf_json(vf: VirtualFunction) -> dict[str, object]:
    return {
        "index": vf.index, "address": vf.address, "vendorId": vf.vendor_id,
        "deviceId": vf.device_id, "driver": vf.driver, "driverKind": str(vf.driver_kind),
        "netdev": vf.netdev, "iommuGroup": vf.iommu_group, "numaNode": vf.numa_node,
        "rdma": vf.is_rdma, "linkType": str(vf.link_type), **_class_json(vf),
    }


def _class_json(device: VirtualFunction) -> dict[str, object]:
    """Device-class facts (new in this schema version's lifetime; additive)."""
    return {
        "class": str(device.device_class), "charDevices": list(_chars(device)),
        "rdmaDevices": [r.name for r in device.rdma_devices],
        "vdpa": None if device.vdpa is None else {
            "name": device.vdpa.name, "driver": device.vdpa.driver,
            "vhostDevice": device.vdpa.vhost_device},
        "uioDevice": device.uio_device, "noIommu": device.noiommu,
        "acpiIndex": device.acpi_index, "pKey": device.pkey,
    }


def _other_json(device: VirtualFunction) -> dict[str, object]:
    return {
        "id": device.id, "address": device.address, "pfAddress": device.pf_address,
        "index": device.index, "vendorId": device.vendor_id, "deviceId": device.device_id,
        "driver": device.driver, "driverKind": str(device.driver_kind),
        "netdev": device.netdev, "iommuGroup": device.iommu_group,
        "numaNode": device.numa_node, "linkType": str(device.link_type),
        "defaultRoute": device.default_route, **_class_json(device),
    }


def inventory_to_json(inv: Inventory) -> dict[str, object]:
    """The stable JSON document of ``sriovctl list --json`` (see docs/discovery.md)."""
    by_pf = _group_vfs(inv)
    return {
        "schemaVersion": SCHEMA_VERSION,
        "pfs": [
            {
                "address": pf.address, "vendorId": pf.vendor_id, "deviceId": pf.device_id,
                "driver": pf.driver, "netdevs": _netdevs(pf), "uplink": pf.uplink,
                "totalVfs": pf.total_vfs,
                "numVfs": pf.num_vfs, "numaNode": pf.numa_node, "linkType": str(pf.link_type),
                "mtu": pf.mtu, "vfs": [_vf_json(v) for v in by_pf.get(pf.address, [])],
            }
            for pf in inv.pfs
        ],
        "others": [_other_json(d) for d in inv.others],
        "skipped": [{"path": s.path, "reason": s.reason} for s in inv.skipped],
    }
