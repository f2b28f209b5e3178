"""In-process host-local IPAM, on-disk compatible with the reference ``host-local`` plugin.

Same store as containernetworking/plugins ``plugins/ipam/host-local`` (see docs/cni.md):
``<dataDir>/<network>/<ip>`` files created O_EXCL 0600 holding ``<containerID>\\r\\n<ifname>``,
``last_reserved_ip.<rangeSetIndex>`` and ``<dataDir>/<network>/lock``, so this allocator and
the reference binary can share one network. Allocation order (round-robin from
``last_reserved_ip`` + 1, skipping the gateway) follows the reference allocator.

What makes a lease unique is the O_EXCL create of its file, here and in the reference; the
reference's ``lock`` keeps its search hint whole. Here only the hint's write (and a read that
met a writer) takes it, not a whole ADD or DEL: in a burst of ADDs every allocation queued on
that one lock (a Python holder waits for the GIL after each of its system calls). Nothing
else needs it: an attachment's own leases are never touched by two of our requests at once
(the plugin's attachment lock), a lease is removed only while it still names its attachment,
and GC, which takes the lock, runs alone (CNI spec).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import ipaddress
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cni import trace
from cni.errors import CniCode, CniError, config_error
from cni.netconf import NetConf
from cni.protocol import DNS, CmdArgs, IPConfig, Result, Route, route_from_json, version_tuple

log = logging.getLogger(__name__)
DEFAULT_DATA_DIR = Path("/var/lib/cni/networks")
LINE_BREAK = "\r\n"
LAST_IP_PREFIX = "last_reserved_ip."
IPAddr = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNet = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class IpRange:
    subnet: IPNet
    start: IPAddr
    end: IPAddr
    gateway: IPAddr

    def contains(self, ip: IPAddr) -> bool:
        return (
            ip.version == self.subnet.version and ip in self.subnet
            and int(self.start) <= int(ip) <= int(self.end)
        )

    def overlaps(self, other: IpRange) -> bool:
        return (
            self.subnet.version == other.subnet.version
            and int(self.start) <= int(other.end)
            and int(other.start) <= int(self.end)
        )


RangeSet = tuple[IpRange, ...]


def _addr(value: Any, key: str) -> IPAddr:
    try:
        return ipaddress.ip_address(value)
    except (ValueError, TypeError):
        raise config_error(key, value, "not an IP address") from None


def parse_range(obj: Any, key: str) -> IpRange:
    """One ``{subnet, rangeStart, rangeEnd, gateway}`` with the reference defaults."""
    if not isinstance(obj, dict) or not isinstance(obj.get("subnet"), str):
        raise config_error(key, obj, "needs a string 'subnet'")
    try:
        subnet = ipaddress.ip_network(obj["subnet"], strict=True)
    except ValueError as e:
        raise config_error(f"{key}.subnet", obj["subnet"], str(e)) from None
    if subnet.prefixlen > subnet.max_prefixlen - 2:
        raise config_error(f"{key}.subnet", obj["subnet"], "network too small to allocate from")
    first = subnet.network_address + 1
    last = subnet.broadcast_address - 1 if subnet.version == 4 else subnet.broadcast_address
    gateway = _addr(obj["gateway"], f"{key}.gateway") if obj.get("gateway") else first
    start = _addr(obj["rangeStart"], f"{key}.rangeStart") if obj.get("rangeStart") else first
    end = _addr(obj["rangeEnd"], f"{key}.rangeEnd") if obj.get("rangeEnd") else last
    for name, ip in (("rangeStart", start), ("rangeEnd", end)):
        if ip.version != subnet.version or ip not in subnet:
            raise config_error(f"{key}.{name}", str(ip), f"not in network {subnet}")
    if int(start) > int(end):  # same version: checked above
        raise config_error(f"{key}.rangeStart", str(start), f"is after rangeEnd {end}")
    return IpRange(subnet=subnet, start=start, end=end, gateway=gateway)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class HostLocalConfig:
    network: str
    data_dir: Path
    range_sets: tuple[RangeSet, ...]
    routes: tuple[Route, ...]
    resolv_conf: str
    requested: tuple[IPAddr, ...]

    @classmethod
    def from_netconf(cls, conf: NetConf, args: CmdArgs, default_data_dir: Path) -> HostLocalConfig:
        ipam = dict(conf.ipam or {})
        raw_sets: list[Any] = []
        if ipam.get("subnet"):  # legacy single-range keys become the first range set
            raw_sets.append(
                [{k: ipam.get(k) for k in ("subnet", "rangeStart", "rangeEnd", "gateway")}]
            )
        raw_sets = (
            list(conf.runtime_config.get("ipRanges") or [])
            + raw_sets
            + list(ipam.get("ranges") or [])
        )
        if not raw_sets:
            raise config_error("ipam.ranges", [], "no IP ranges specified")
        sets: list[RangeSet] = []
        for i, raw_set in enumerate(raw_sets):
            if not isinstance(raw_set, list) or not raw_set:
                raise config_error(
                    f"ipam.ranges[{i}]", raw_set, "must be a non-empty list of ranges"
                )
            rs = tuple(parse_range(r, f"ipam.ranges[{i}][{j}]") for j, r in enumerate(raw_set))
            if len({r.subnet.version for r in rs}) != 1:
                raise config_error(f"ipam.ranges[{i}]", raw_set, "mixes IPv4 and IPv6")
            sets.append(rs)
        flat = [(i, r) for i, rs in enumerate(sets) for r in rs]
        for a, (i, r1) in enumerate(flat):
            for j, r2 in flat[a + 1 :]:
                if r1.overlaps(r2):
                    raise config_error(
                        f"ipam.ranges[{j}]", str(r2.subnet), f"overlaps range set {i}"
                    )
        families = [rs[0].subnet.version for rs in sets]
        if max(families.count(4), families.count(6)) > 1 and version_tuple(conf.cni_version) < (
            0,
            3,
            0,
        ):
            raise config_error(
                "cniVersion", conf.cni_version, "does not support more than 1 address per family"
            )
        routes = []
        for k, r in enumerate(ipam.get("routes") or []):
            try:  # with the spec 1.1 keys (priority, table...), which the result carries on
                routes.append(route_from_json(r))
            except CniError as e:
                raise config_error(f"ipam.routes[{k}]", r, e.msg.removeprefix(
                    "cannot decode result: ")) from None
        data_dir = ipam.get("dataDir") or default_data_dir
        if not isinstance(data_dir, str | Path):
            raise config_error("ipam.dataDir", data_dir, "must be a string")
        return cls(
            network=conf.name,
            data_dir=Path(data_dir),
            range_sets=tuple(sets),
            routes=tuple(routes),
            resolv_conf=str(ipam.get("resolvConf") or ""),
            requested=_requested_ips(conf, args),
        )


def _requested_ips(conf: NetConf, args: CmdArgs) -> tuple[IPAddr, ...]:
    raw: list[tuple[str, Any]] = []
    if args.arg("IP"):
        raw.append(("CNI_ARGS IP", args.arg("IP")))
    cni_args = conf.args.get("cni") if isinstance(conf.args, dict) else None
    if isinstance(cni_args, dict):
        raw += [("args.cni.ips", v) for v in cni_args.get("ips") or []]
    raw += [("runtimeConfig.ips", v) for v in conf.runtime_config.get("ips") or []]
    out = []
    for key, value in raw:
        try:
            out.append(ipaddress.ip_interface(value).ip)
        except (ValueError, TypeError):
            raise config_error(key, value, "not an IP address") from None
    return tuple(out)


class Store:
    """The reference ``backend/disk`` store of one network."""

    def __init__(self, data_dir: Path, network: str) -> None:
        self.dir = data_dir / network
        self.dir.mkdir(mode=0o755, parents=True, exist_ok=True)

    @contextlib.contextmanager
    def lock(self, wait: bool = True) -> Iterator[bool]:
        """The reference's lock; with ``wait=False`` it yields False at once when it is held."""
        fd = os.open(self.dir / "lock", os.O_RDONLY | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)

    def reserve(self, ip: IPAddr, container_id: str, ifname: str, range_id: int) -> bool:
        try:
            fd = os.open(self.dir / str(ip), os.O_RDWR | os.O_EXCL | os.O_CREAT, 0o600)
        except FileExistsError:
            return False
        try:
            # complete or not at all: a lease cut short by a full disk would never be found by
            # its container ID again (leaked IP); the caller sees the OSError
            _write_all(fd, (container_id.strip() + LINE_BREAK + ifname).encode())
        except OSError:
            os.close(fd)
            (self.dir / str(ip)).unlink(missing_ok=True)
            raise
        os.close(fd)
        with trace.step("host-local.hint-write"):
            self._write_hint(range_id, ip)
        return True

    def _write_hint(self, range_id: int, ip: IPAddr) -> None:
        """``last_reserved_ip.<range_id>``, written under the reference's lock: the only step
        of an allocation that needs it (two writers at once would leave a mix of their
        addresses, a valid but wrong hint). Only a search hint: when another allocation holds
        the lock (a burst) this one is not written - the next search then starts a little
        earlier and skips the taken leases; a failure is logged."""
        try:
            with self.lock(wait=False) as locked:
                if not locked:
                    return
                fd = os.open(self.dir / f"{LAST_IP_PREFIX}{range_id}",
                             os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
                try:
                    _write_all(fd, str(ip).encode())
                finally:
                    os.close(fd)
        except OSError as e:
            log.warning("cannot record the last reserved IP %s: %s", ip, e)

    def last_reserved(self, range_id: int) -> IPAddr | None:
        path = self.dir / f"{LAST_IP_PREFIX}{range_id}"
        for locked in (False, True):  # unlocked first; an empty read met a writer: again, locked
            try:
                with self.lock() if locked else contextlib.nullcontext():
                    text = path.read_text().strip()
                if text:
                    return ipaddress.ip_address(text)
            except (OSError, ValueError):
                return None
        return None

    def _files(self) -> Iterator[tuple[str, bytes]]:
        """(name, trimmed content) of every file whose name may be an address, read with as
        few system calls and objects as possible (ADD and DEL read every lease of the network)."""
        dir_fd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            with os.scandir(dir_fd) as entries:
                names = [e.name for e in entries if e.name[:1].isdigit() or ":" in e.name]
            for name in names:
                try:
                    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=dir_fd)
                except OSError:
                    continue
                try:
                    content = os.read(fd, 4096)
                except OSError:
                    continue
                finally:
                    os.close(fd)
                yield name, content.strip()
        finally:
            os.close(dir_fd)

    def allocations(self) -> Iterator[tuple[Path, str]]:
        """(file, trimmed content) of every IP file."""
        for name, content in self._files():
            if _is_address(name):
                yield self.dir / name, content.decode(errors="replace")

    def leases_with(self, *contents: str) -> Iterator[tuple[Path, str]]:
        """(file, content) of the leases whose content is one of ``contents`` (only their
        names are parsed)."""
        wanted = {c.encode() for c in contents}
        for name, content in self._files():
            if content in wanted and _is_address(name):
                yield self.dir / name, content.decode()

    def find(self, container_id: str, ifname: str) -> list[IPAddr]:
        match, legacy = container_id.strip() + LINE_BREAK + ifname, container_id.strip()
        return [ipaddress.ip_address(p.name) for p, _ in self.leases_with(match, legacy)]

    def unreserve(self, ip: IPAddr, container_id: str, ifname: str) -> None:
        path = self.dir / str(ip)
        with contextlib.suppress(OSError):
            if (
                path.read_bytes().decode(errors="replace").strip()
                == container_id.strip() + LINE_BREAK + ifname
            ):
                path.unlink()

    def leases_of(self, container_id: str, ifname: str) -> list[tuple[Path, str]]:
        """(file, content) of the leases of one attachment; files written by very old host-local
        hold only the container ID and count when no file names the interface."""
        match, legacy = container_id.strip() + LINE_BREAK + ifname, container_id.strip()
        found = list(self.leases_with(match, legacy))
        return [(p, c) for p, c in found if c == match] or found

    def release(self, leases: list[tuple[Path, str]]) -> None:
        """Remove the ``leases`` that still hold what was listed (a lease released and taken by
        another container meanwhile stays)."""
        for path, content in leases:
            with contextlib.suppress(OSError):
                if path.read_bytes().decode(errors="replace").strip() == content:
                    path.unlink()


def candidates(rs: RangeSet, last: IPAddr | None) -> Iterator[tuple[IPAddr, IpRange]]:
    """The reference RangeIter: from ``last`` + 1, round-robin over ranges, skipping gateways."""
    idx, cur, start = 0, None, None
    if last is not None:
        idx = next((i for i, r in enumerate(rs) if r.contains(last)), -1)
        cur = last if idx >= 0 else None
        idx = max(idx, 0)
    while True:
        r = rs[idx]
        if cur is None:
            cur = start = r.start
        else:
            if cur == r.end:
                idx = (idx + 1) % len(rs)
                r = rs[idx]
                cur = r.start
            else:
                cur = cur + 1
            if start is None:
                start = cur
            elif cur == start:
                return
        if cur != r.gateway:
            yield cur, r


def _range_for(rs: RangeSet, ip: IPAddr) -> IpRange | None:
    return next((r for r in rs if r.contains(ip)), None)


def parse_resolv_conf(path: str) -> DNS:
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as e:
        raise CniError(CniCode.IPAM, f"cannot read ipam.resolvConf {path!r}", str(e)) from None
    ns, domain, search, options = [], "", [], []
    for line in lines:
        fields = line.split()
        if not fields or fields[0].startswith(("#", ";")):
            continue
        key, values = fields[0], fields[1:]
        if key == "nameserver":
            ns += values
        elif key == "domain" and values:
            domain = values[0]
        elif key == "search":
            search += values
        elif key == "options":
            options += values
    return DNS(nameservers=tuple(ns), domain=domain, search=tuple(search), options=tuple(options))


class HostLocal:
    """The :class:`cni.ipam.IpamRunner` for ``ipam.type == "host-local"``, without an exec."""

    def __init__(self, default_data_dir: Path = DEFAULT_DATA_DIR) -> None:
        self.default_data_dir = default_data_dir

    def _open(self, conf: NetConf, args: CmdArgs) -> tuple[HostLocalConfig, Store]:
        cfg = HostLocalConfig.from_netconf(conf, args, self.default_data_dir)
        return cfg, Store(cfg.data_dir, cfg.network)

    def add(self, conf: NetConf, args: CmdArgs) -> Result:
        cfg, store = self._open(conf, args)
        requested = list(cfg.requested)
        ips: list[IPConfig] = []
        # the attachment's own leases: only this attachment adds or releases them, and the
        # plugin serialises its requests (attachment lock)
        with trace.step("host-local.scan"):
            held = store.find(args.container_id, args.ifname)
        try:
            for set_index, rs in enumerate(cfg.range_sets):
                want = next((ip for ip in requested if _range_for(rs, ip)), None)
                if want is not None:
                    requested.remove(want)
                with trace.step("host-local.reserve"):
                    ips.append(self._allocate(store, rs, set_index, args, want, held))
            if requested:
                raise CniError(
                    CniCode.IPAM,
                    "failed to allocate all requested IPs: "
                    + ", ".join(str(ip) for ip in requested),
                )
        except Exception as e:
            # undo only what this call reserved (an earlier ADD's IPs stay)
            for ip in ips:
                store.unreserve(
                    ipaddress.ip_interface(ip.address).ip, args.container_id, args.ifname
                )
            if isinstance(e, OSError):  # a full or failing disk: a clear IPAM error, not 999
                raise CniError(CniCode.IPAM, f"cannot write a lease under {store.dir}",
                               e.strerror or str(e)) from e
            raise
        dns = parse_resolv_conf(cfg.resolv_conf) if cfg.resolv_conf else DNS()
        return Result(cni_version=conf.cni_version, ips=tuple(ips), routes=cfg.routes, dns=dns)

    @staticmethod
    def _allocate(
        store: Store, rs: RangeSet, set_index: int, args: CmdArgs, want: IPAddr | None,
        held: list[IPAddr],
    ) -> IPConfig:
        """One IP of range set ``set_index`` (``want`` if requested); ``held``: the leases this
        attachment already has (a second one in a range set is refused, as the reference)."""
        cid, ifname = args.container_id, args.ifname
        if want is not None:
            r = _range_for(rs, want)
            assert r is not None
            if want == r.gateway:
                raise CniError(CniCode.IPAM, f"requested ip {want} is subnet's gateway")
            if not store.reserve(want, cid, ifname, set_index):
                raise CniError(
                    CniCode.IPAM,
                    f"requested IP address {want} is not available in range set {set_index}",
                )
            return IPConfig(address=f"{want}/{r.subnet.prefixlen}", gateway=str(r.gateway))
        for ip in held:
            if _range_for(rs, ip):
                raise CniError(
                    CniCode.IPAM,
                    f"{ip} has been allocated to {cid}, duplicate allocation is not allowed",
                )
        with trace.step("host-local.hint"):
            last = store.last_reserved(set_index)
        for ip, r in candidates(rs, last):
            if store.reserve(ip, cid, ifname, set_index):
                return IPConfig(address=f"{ip}/{r.subnet.prefixlen}", gateway=str(r.gateway))
        raise CniError(
            CniCode.IPAM,
            f"no IP addresses available in range set {set_index}: "
            + ",".join(f"{r.start}-{r.end}" for r in rs),
        )

    def delete(self, conf: NetConf, args: CmdArgs) -> None:
        _, store = self._open(conf, args)
        store.release(store.leases_of(args.container_id, args.ifname))

    def check(self, conf: NetConf, args: CmdArgs) -> None:
        _, store = self._open(conf, args)
        if not store.find(args.container_id, args.ifname):
            raise CniError(
                CniCode.IPAM,
                f"host-local: failed to find address added by container {args.container_id}",
            )

    def gc(self, conf: NetConf, args: CmdArgs) -> None:
        """Release every allocation of this network whose attachment is not in the valid list."""
        if conf.valid_attachments is None:
            return
        _, store = self._open(conf, args)
        valid = {(a.container_id, a.ifname) for a in conf.valid_attachments}
        valid_ids = {a.container_id for a in conf.valid_attachments}
        with store.lock():
            for path, content in list(store.allocations()):
                cid, _, ifname = content.partition(LINE_BREAK)
                keep = (cid, ifname) in valid if ifname else cid in valid_ids
                if not keep:
                    log.info("GC: releasing %s held by %s/%s", path.name, cid, ifname or "-")
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()

    def status(self, conf: NetConf, args: CmdArgs) -> None:
        self._open(conf, args)  # validates config and that the store is usable


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
