"""The attachment record: one typed, versioned value per ``<containerID>-<ifname>``.

Saved under ``<stateDir>/<containerID>-<ifname>`` (see :mod:`cni.state`) before an ADD changes
anything and completed once it succeeded; DEL, CHECK and GC read it back. Every field of every
mode is typed here (no untyped dict crosses a module boundary), and only
:class:`cni.state.StateStore.save` writes it - called by the plugin and, for the provisional
record a mode writes before its first change, through :meth:`AttachmentContext.save_pending`.

On disk: JSON with ``"version": 2``. :meth:`AttachmentRecord.from_json` also reads the flat
version-1 records of earlier releases (the plugin's keys merged with the VF or fallback mode's),
so attachments made before an upgrade are still deleted exactly. A record that cannot be read
raises :class:`DamagedRecord`; the plugin quarantines it (docs/cni.md "Damaged records").
"""

from __future__ import annotations

import dataclasses
import enum
import os
from typing import Any, Protocol

from cni import vf_netdev, vf_pf
from cni.protocol import CURRENT_VERSION, Result
from sriov.types import VfState

RECORD_VERSION = 2


class DamagedRecord(ValueError):
    """A record file that is not a usable attachment record (truncated, unknown mode...)."""


class AttachmentMode(enum.StrEnum):
    VF = "vf"
    DPDK = "dpdk"
    FALLBACK = "fallback"
    NIC = "nic"


@dataclasses.dataclass(frozen=True, slots=True)
class NetnsId:
    """A network namespace's identity: the (st_dev, st_ino) of its nsfs inode.

    Paths are reused (``/proc/<pid>/ns/net`` of a recycled PID, a re-created bind mount); the
    identity is not, for as long as the namespace lives."""

    dev: int
    ino: int

    @classmethod
    def of(cls, path: str) -> NetnsId | None:
        if not path:
            return None
        try:
            st = os.stat(path)
        except OSError:
            return None
        return cls(st.st_dev, st.st_ino)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class VfPart:
    """VF/DPDK mode: where the VF sits and how it was before ADD (for the exact restore)."""

    pf: str
    vf_index: int
    pf_state: VfState | None = None
    netdev: vf_netdev.NetdevSnapshot | None = None
    """The VF netdev in the host before ADD; None in DPDK mode."""
    released: bool = False
    """The VF was reclaimed by a later attachment (netns gone): DEL must not touch it."""
    rdma: tuple[str, ...] = ()
    """RDMA devices ADD moved (or was about to move) into the pod netns (exclusive mode)."""

    def to_json(self) -> dict[str, Any]:
        return {"pf": self.pf, "vfIndex": self.vf_index,
                "pfState": vf_pf.state_to_json(self.pf_state) if self.pf_state else None,
                "hostNetdev": self.netdev.to_json() if self.netdev else None,
                "released": self.released, "rdmaDevices": list(self.rdma)}

    @classmethod
    def from_json(cls, raw: Any) -> VfPart:
        if not isinstance(raw, dict):
            raise DamagedRecord("VF part is not a JSON object")
        if not isinstance(raw.get("pf"), str) or not raw["pf"]:
            raise DamagedRecord("VF record has no 'pf'")
        try:
            index = raw["vfIndex"]
            if isinstance(index, bool) or not isinstance(index, int) or index < 0:
                raise DamagedRecord(f"VF record has a bad 'vfIndex' {index!r}")
            pf_state = vf_pf.state_from_json(raw["pfState"]) if raw.get("pfState") else None
            return cls(pf=raw["pf"], vf_index=index, pf_state=pf_state,
                       netdev=vf_netdev.NetdevSnapshot.from_json(raw["hostNetdev"])
                       if raw.get("hostNetdev") else None,
                       released=bool(raw.get("released")), rdma=_rdma_names(raw))
        except KeyError as e:
            raise DamagedRecord(f"VF record lacks {e}") from None
        except (TypeError, ValueError) as e:
            raise DamagedRecord(f"VF record: {e}") from None


def _rdma_names(raw: dict[str, Any]) -> tuple[str, ...]:
    names = raw.get("rdmaDevices") or []
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise DamagedRecord(f"VF record has bad 'rdmaDevices' {names!r}")
    return tuple(names)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class FallbackPart:
    """Fallback mode: the link's temporary name (crash before the rename) and its parents."""

    temp_ifname: str = ""
    vlan_parent: str | None = None
    """``<master>.<vid>`` this attachment uses (the users of a sub-interface are these records)."""
    link_type: str = ""
    master: str = ""
    parent: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"tempIfname": self.temp_ifname, "vlanParent": self.vlan_parent,
                "fallbackType": self.link_type, "master": self.master, "parent": self.parent}

    @classmethod
    def from_json(cls, raw: Any) -> FallbackPart:
        if not isinstance(raw, dict):
            raise DamagedRecord("fallback part is not a JSON object")
        strings = {k: raw.get(k) for k in ("tempIfname", "fallbackType", "master", "parent")}
        if any(v is not None and not isinstance(v, str) for v in strings.values()):
            raise DamagedRecord("fallback record has a non-string name")
        vlan = raw.get("vlanParent")
        if vlan is not None and not isinstance(vlan, str):
            raise DamagedRecord("fallback record has a bad 'vlanParent'")
        return cls(temp_ifname=strings["tempIfname"] or "", vlan_parent=vlan or None,
                   link_type=strings["fallbackType"] or "", master=strings["master"] or "",
                   parent=strings["parent"] or "")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class NicPart:
    """NIC mode: the whole NIC's netdev as it was in the host before ADD (the exact restore)."""

    netdev: vf_netdev.NetdevSnapshot
    released: bool = False
    """The NIC was reclaimed by a later attachment (netns gone): DEL must not touch it."""

    def to_json(self) -> dict[str, Any]:
        return {"hostNetdev": self.netdev.to_json(), "released": self.released}

    @classmethod
    def from_json(cls, raw: Any) -> NicPart:
        if not isinstance(raw, dict) or not raw.get("hostNetdev"):
            raise DamagedRecord("NIC part has no 'hostNetdev'")
        try:
            return cls(netdev=vf_netdev.NetdevSnapshot.from_json(raw["hostNetdev"]),
                       released=bool(raw.get("released")))
        except (TypeError, ValueError) as e:
            raise DamagedRecord(f"NIC record: {e}") from None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class AttachmentRecord:
    mode: AttachmentMode
    container_id: str
    ifname: str
    network: str
    netns: str
    netns_id: NetnsId | None = None
    """Identity of ``netns`` at ADD; DEL trusts it over a different ``CNI_NETNS``."""
    device_id: str | None = None
    complete: bool = False
    """False while ADD runs: a crash leaves a provisional record that DEL and GC still undo."""
    netconf: str = ""
    result: Result | None = None
    vf: VfPart | None = None
    fallback: FallbackPart | None = None
    nic: NicPart | None = None
    del_pending: bool = False
    """DEL was answered and the mode's slow tail (a VF's move home and restore, a fallback
    link's deletion) runs after the reply, in the agent (docs/cni.md "Deferred DEL"): whoever
    finds this record next - the agent's next start, an ADD of the VF, GC - finishes it,
    whether the pod netns still exists or not."""

    @property
    def key(self) -> tuple[str, str]:
        return self.container_id, self.ifname

    def to_json(self) -> dict[str, Any]:
        return {
            "version": RECORD_VERSION, "mode": str(self.mode), "containerID": self.container_id,
            "ifname": self.ifname, "network": self.network, "netns": self.netns,
            "netnsId": [self.netns_id.dev, self.netns_id.ino] if self.netns_id else None,
            "deviceID": self.device_id, "complete": self.complete, "netconf": self.netconf,
            "result": self.result.to_dict(self.result.cni_version or CURRENT_VERSION)
            if self.result else None,
            "vf": self.vf.to_json() if self.vf else None,
            "fallback": self.fallback.to_json() if self.fallback else None,
            **({"nic": self.nic.to_json()} if self.nic else {}),
            **({"delPending": True} if self.del_pending else {}),
        }

    @classmethod
    def from_json(cls, raw: Any) -> AttachmentRecord:
        """Version 2, or the flat version-1 layout; :class:`DamagedRecord` when unusable."""
        if not isinstance(raw, dict):
            raise DamagedRecord("record is not a JSON object")
        version = raw.get("version", 1)
        if version == 1:
            raw = _upgrade_v1(raw)
        elif version != RECORD_VERSION:
            raise DamagedRecord(f"unknown record version {version!r}")
        try:
            mode = AttachmentMode(raw.get("mode"))
        except ValueError:
            raise DamagedRecord(f"unknown attachment mode {raw.get('mode')!r}") from None
        for key in ("containerID", "ifname"):
            if not isinstance(raw.get(key), str) or not raw[key]:
                raise DamagedRecord(f"record has no {key!r}")
        texts = {k: raw.get(k) or "" for k in ("network", "netns", "netconf")}
        if any(not isinstance(v, str) for v in texts.values()):
            raise DamagedRecord("record has a non-string network/netns/netconf")
        device = raw.get("deviceID")
        if device is not None and not isinstance(device, str):
            raise DamagedRecord("record has a bad 'deviceID'")
        vf = VfPart.from_json(raw["vf"]) if raw.get("vf") is not None else None
        if mode in (AttachmentMode.VF, AttachmentMode.DPDK) and (vf is None or not device):
            raise DamagedRecord(f"{mode} record lacks its VF (deviceID, pf, vfIndex)")
        nic = NicPart.from_json(raw["nic"]) if raw.get("nic") is not None else None
        if mode is AttachmentMode.NIC and not device:
            raise DamagedRecord("nic record lacks its deviceID")
        fallback = FallbackPart.from_json(raw["fallback"]) if raw.get("fallback") else None
        return cls(mode=mode, container_id=raw["containerID"], ifname=raw["ifname"],
                   network=texts["network"], netns=texts["netns"],
                   netns_id=_netns_id(raw.get("netnsId")), device_id=device or None,
                   complete=bool(raw.get("complete")), netconf=texts["netconf"],
                   result=_result(raw.get("result")), vf=vf, fallback=fallback, nic=nic,
                   del_pending=raw.get("delPending") is True)


def _netns_id(raw: Any) -> NetnsId | None:
    if raw is None:
        return None
    if (not isinstance(raw, list) or len(raw) != 2
            or not all(isinstance(x, int) and not isinstance(x, bool) for x in raw)):
        raise DamagedRecord(f"bad 'netnsId' {raw!r}")
    return NetnsId(raw[0], raw[1])


def _result(raw: Any) -> Result | None:
    if not raw:
        return None
    try:
        return Result.from_json(raw)
    except Exception as e:  # any decoding failure means the same: damaged
        raise DamagedRecord(f"stored result unreadable: {e}") from None


def _upgrade_v1(raw: dict[str, Any]) -> dict[str, Any]:
    """The flat version-1 record (plugin + mode keys in one dict) in the version-2 layout.

    Version 1 had ``complete`` only in VF records (set with the result) and ``provisional`` in
    fallback ones (dropped by the plugin's final save); a record with a ``result`` is complete.
    """
    mode = raw.get("mode")
    out = {k: raw.get(k) for k in ("mode", "containerID", "ifname", "network", "netns",
                                    "deviceID", "netconf")}
    out["result"] = raw.get("result") or raw.get("vfResult")
    if mode in ("vf", "dpdk"):
        out["vf"] = {"pf": raw.get("pf"), "vfIndex": raw.get("vfIndex"),
                     "pfState": raw.get("pfState"), "hostNetdev": raw.get("hostNetdev"),
                     "released": raw.get("released")}
        out["complete"] = bool(raw.get("complete") or raw.get("result"))
    else:
        out["fallback"] = {k: raw.get(k) for k in ("tempIfname", "vlanParent", "fallbackType",
                                                   "master", "parent")}
        out["complete"] = not raw.get("provisional")
    return out


@dataclasses.dataclass(frozen=True, slots=True)
class VfOwner:
    """Which attachment holds a VF (``<state>/pci/owner/<bdf>``)."""

    container_id: str
    ifname: str
    netns: str = ""

    @property
    def key(self) -> tuple[str, str]:
        return self.container_id, self.ifname


class Journal:
    """The one writer of one attachment's record while ADD runs.

    The plugin creates it with the attachment's identity; the mode stages its part and saves
    the provisional record before its first change (:meth:`save`), the plugin saves the
    complete one. Every write goes through :meth:`cni.state.StateStore.save`.
    """

    def __init__(self, state: RecordWriter, record: AttachmentRecord) -> None:
        self.state = state
        self.current = record
        self.written = False

    def stage(self, **changes: Any) -> AttachmentRecord:
        """Change the record in memory only (saved with the next :meth:`save`)."""
        self.current = dataclasses.replace(self.current, **changes)
        return self.current

    def save(self, **changes: Any) -> AttachmentRecord:
        record = dataclasses.replace(self.current, **changes)
        self.state.save(record)
        self.current, self.written = record, True
        return record

    def discard(self) -> None:
        """Remove what this journal wrote (ADD rolled back)."""
        if self.written:
            self.state.delete(*self.current.key)
            self.written = False


class RecordWriter(Protocol):
    def save(self, record: AttachmentRecord) -> None: ...
    def delete(self, container_id: str, ifname: str) -> None: ...
