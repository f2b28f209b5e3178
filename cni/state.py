"""On-disk CNI state: attachment records, per-attachment and per-VF locks, VF ownership.

Layout under ``root`` (default ``/var/lib/cni/sriov``, like sriov-cni): directories 0700,
files 0600. Every write is complete and read back before it counts, and fsynced (file and
directory) unless it only has to outlive a killed process (:func:`atomic_write`); a failure
raises :class:`cni.errors.CniError` code 105 and leaves the previous file in place.

- ``<root>/<containerID>-<ifname>``: attachment record (:class:`cni.record.AttachmentRecord`)
- ``<root>/attach_lock/<containerID>-<ifname>.lock``: ``flock`` per attachment (taken first)
- ``<root>/tombstone/<containerID>-<ifname>``: when the last DEL of the attachment finished
- ``<root>/quarantine/<key>.<ns>``: damaged records moved aside (never read again)
- ``<root>/pci/vf_lock/<bdf>.lock``: ``flock`` per VF
- ``<root>/pci/owner/<bdf>``: which attachment owns the VF, with a copy of its record (JSON)
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from cni.errors import CniCode, CniError
from cni.protocol import CONTAINER_ID_RE
from cni.record import AttachmentRecord, DamagedRecord, VfOwner
from sriov import validate
from sriov.errors import InvalidInputError, VfBusyError

log = logging.getLogger(__name__)
DEFAULT_STATE_DIR = Path("/var/lib/cni/sriov")
LOCK_POLL_INTERVAL = 0.01
TMP_MARK = ".tmp"
TOMBSTONE_TTL = 600.0
"""Seconds a DEL's tombstone is kept: far longer than any ADD can stay queued (the attachment
lock times out after 60 s, a standalone invocation after 55 s)."""
PRUNE_EVERY = 60.0
"""DEL prunes expired tombstones at most this often (kubelet never sends CNI GC)."""
WriteFaults = Callable[[str], None]


def attachment_key(container_id: str, ifname: str) -> str:
    """``<containerID>-<ifname>``, both validated so the key can never escape the state dir."""
    if not CONTAINER_ID_RE.fullmatch(container_id):
        raise InvalidInputError("container id", container_id, "invalid characters")
    validate.ifname(ifname)
    return f"{container_id}-{ifname}"


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written <= 0:  # a regular file never does this; never loop forever on it
            raise OSError(errno.EIO, "write returned 0")
        view = view[written:]


def atomic_write(path: Path, data: bytes, mode: int = 0o600,
                 fault: Callable[[], None] | None = None, *, durable: bool = True) -> None:
    """tmp + complete write + fsync + rename + fsync(dir) + read back, or :class:`CniError` 105.

    A reader never sees a torn file, a short write (full disk) never becomes a truncated
    record, and the previous content stays in place on any failure (the tmp file is removed).
    fsync also surfaces what a filesystem reports only at writeback (ext4's delayed-allocation
    ENOSPC, EIO). ``durable=False`` skips both fsyncs (about 4 ms a write on a busy disk), for
    what only has to outlive a killed process, not a reboot: the page cache keeps it. Its
    blocks are then reserved first (``posix_fallocate``), so a full disk still fails here and
    not at writeback; a filesystem that cannot reserve gets the fsyncs instead.
    ``fault`` is the test seam, called with the tmp file open and empty (``SRIOV_CNI_FAULT=
    write-record-complete:eio``, :mod:`cni.faults`).
    """
    tmp = path.with_name(f".{path.name}{TMP_MARK}{os.getpid()}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
        try:
            if fault is not None:
                fault()
            if not durable and not _reserve(fd, len(data)):
                durable = True  # no way to reserve the blocks: let fsync surface the errors
            _write_all(fd, data)
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        if durable:
            dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        if path.read_bytes() != data:
            raise OSError(errno.EIO, "read back differs from what was written")
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise CniError(CniCode.STATE, f"cannot write state file {path}",
                       f"{e.strerror or e}; the verb is rolled back") from e


def _reserve(fd: int, size: int) -> bool:
    """Allocate ``size`` bytes of ``fd`` now (ENOSPC raises); False if the filesystem can't."""
    if size == 0:
        return True
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as e:
        if e.errno in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            return False
        raise
    return True


def boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def boottime_ns() -> int:
    """CLOCK_BOOTTIME: one clock for every process of this boot (as /proc/<pid>/stat)."""
    return time.clock_gettime_ns(time.CLOCK_BOOTTIME)


class StateStore:
    def __init__(
        self, root: Path = DEFAULT_STATE_DIR, *, faults: WriteFaults | None = None
    ) -> None:
        self.root = Path(root)
        self.faults = faults
        """Test seam called before each file write with the step ``write-record-pending``,
        ``write-record-complete``, ``write-owner`` or ``write-tombstone``; None in production."""

    def _write(self, path: Path, data: bytes, step: str, *, durable: bool = True) -> None:
        faults = self.faults
        atomic_write(path, data, fault=(lambda: faults(step)) if faults is not None else None,
                     durable=durable)

    # ------------------------------------------------------------ directories
    def _dir(self, *parts: str) -> Path:
        path = self.root.joinpath(*parts)
        if not path.is_dir():
            # mkdir(parents=True) gives the intermediate levels the umask mode (0755): create
            # the root and every level below it 0700 ourselves
            self.root.parent.mkdir(parents=True, exist_ok=True)
            for depth in range(len(parts) + 1):
                self.root.joinpath(*parts[:depth]).mkdir(mode=0o700, exist_ok=True)
        return path

    # ------------------------------------------------------------ attachments
    def path_of(self, container_id: str, ifname: str) -> Path:
        return self.root / attachment_key(container_id, ifname)

    def save(self, record: AttachmentRecord, *, durable: bool | None = None) -> None:
        """The one writer of attachment records (complete, verified, or code 105).

        A complete record is fsynced: DEL after a reboot needs it (the host-local lease and the
        PF-side restore). A provisional one (``complete=False``) is not: it only lets DEL/GC
        undo an ADD whose process was killed, and the page cache keeps it for that; everything
        it names (VF in a pod, PF-side VF settings, fallback links, VLAN sub-interfaces) is
        gone after a reboot, the lease is found by container ID, and a record torn by a power
        loss is quarantined like any damaged one. Its blocks are still reserved, so a full disk
        fails the ADD at this write (docs/cni.md, State). ``durable`` overrides that choice
        (a deferred DEL's mark need not outlive a reboot: the netns it pins does not)."""
        key = attachment_key(record.container_id, record.ifname)
        step = "write-record-complete" if record.complete else "write-record-pending"
        self._write(self._dir() / key, json.dumps(record.to_json(), sort_keys=True).encode(), step,
                    durable=record.complete if durable is None else durable)

    def load(self, container_id: str, ifname: str) -> AttachmentRecord | None:
        """The record, None when there is none; :class:`DamagedRecord` when it is unusable."""
        path = self.path_of(container_id, ifname)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as e:
            raise DamagedRecord(f"{path}: unreadable: {e.strerror}") from None
        record = _parse(path, data)
        if record.key != (container_id, ifname):
            raise DamagedRecord(f"{path}: names attachment {record.container_id}/{record.ifname}")
        return record

    def delete(self, container_id: str, ifname: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path_of(container_id, ifname).unlink()

    def quarantine(self, path: Path, reason: str) -> Path | None:
        """Move a damaged record aside (``<root>/quarantine/``) so it is never read again."""
        target = self._dir("quarantine") / f"{path.name}.{time.time_ns()}"
        try:
            os.replace(path, target)
        except FileNotFoundError:
            return None
        log.error("damaged attachment record %s (%s): moved to %s", path, reason, target)
        return target

    def was_quarantined(self, container_id: str, ifname: str) -> bool:
        """Whether a damaged record of this attachment was moved aside (by a GC, say)."""
        directory = self.root / "quarantine"
        prefix = attachment_key(container_id, ifname) + "."
        return directory.is_dir() and any(p.name.startswith(prefix) for p in directory.iterdir())

    def list_attachments(self) -> tuple[list[AttachmentRecord], list[tuple[Path, str]]]:
        """(usable records, [(path, reason)] of damaged ones) of every stored attachment."""
        records: list[AttachmentRecord] = []
        damaged: list[tuple[Path, str]] = []
        if not self.root.is_dir():
            return records, damaged
        for path in sorted(self.root.iterdir()):
            if path.name.startswith(".") or not path.is_file():
                continue
            try:
                record = _parse(path, path.read_bytes())
                if path.name != f"{record.container_id}-{record.ifname}":
                    raise DamagedRecord(f"names attachment {record.container_id}/{record.ifname}")
            except (OSError, DamagedRecord) as e:
                damaged.append((path, str(e)))
                continue
            records.append(record)
        return records, damaged

    def sweep_tmp(self) -> list[Path]:
        """Remove ``.<name>.tmp<pid>`` leftovers of writers that died (GC and agent start)."""
        removed: list[Path] = []
        if not self.root.is_dir():
            return removed
        for path in self.root.rglob(f".*{TMP_MARK}*"):
            pid = path.name.rpartition(TMP_MARK)[2]
            if pid.isdigit() and int(pid) != os.getpid() and Path(f"/proc/{pid}").exists():
                continue  # a live writer (another agent or plugin) is between open and rename
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed.append(path)
        if removed:
            log.info("removed %d leftover temporary state file(s)", len(removed))
        return removed

    # ------------------------------------------------------------ attachment lock
    @contextlib.contextmanager
    def attachment_lock(self, container_id: str, ifname: str,
                        timeout: float = 60.0) -> Iterator[None]:
        """Exclusive ``flock`` on one attachment; every verb takes it before reading anything.

        It orders before the VF lock (never the other way round). :class:`VfBusyError` (code
        11) after ``timeout``.
        """
        path = self._dir("attach_lock") / f"{attachment_key(container_id, ifname)}.lock"
        with _flock(path, timeout, f"attachment {container_id}/{ifname}"):
            yield

    def drop_attachment_lock(self, container_id: str, ifname: str) -> None:
        """Unlink the lock file; call while holding it (DEL: no lock file per gone pod)."""
        with contextlib.suppress(FileNotFoundError):
            (self.root / "attach_lock" / f"{attachment_key(container_id, ifname)}.lock").unlink()

    def sweep_attachment_locks(self) -> None:
        """Remove lock files left by a killed verb (each verb unlinks its own on the way out),
        skipping any lock in use. GC and agent start."""
        directory = self.root / "attach_lock"
        if not directory.is_dir():
            return
        for path in directory.iterdir():
            with contextlib.suppress(OSError, VfBusyError), _flock(path, 0, path.name):
                path.unlink()

    def write_tombstone(self, container_id: str, ifname: str) -> None:
        """Remember that a DEL of this attachment finished now (a late ADD must then fail).

        Not fsynced (4 ms per DEL here): no ADD queued before a reboot runs after it, and
        tombstones of another boot are ignored anyway."""
        body = {"boot": boot_id(), "deletedAt": boottime_ns()}
        self._write(self._dir("tombstone") / attachment_key(container_id, ifname),
                    json.dumps(body).encode(), "write-tombstone", durable=False)

    def tombstone(self, container_id: str, ifname: str) -> int | None:
        """CLOCK_BOOTTIME ns of the last DEL of this boot, or None."""
        path = self.root / "tombstone" / attachment_key(container_id, ifname)
        try:
            body = json.loads(path.read_bytes())
        except (OSError, ValueError):
            return None
        if not isinstance(body, dict) or body.get("boot") != boot_id():
            return None
        deleted = body.get("deletedAt")
        return deleted if isinstance(deleted, int) else None

    def prune_tombstones_if_due(self) -> None:
        """Prune at most every :data:`PRUNE_EVERY` seconds (DEL; the marker's mtime says when)."""
        marker = self.root / "tombstone" / ".pruned"
        try:
            if time.time() - marker.stat().st_mtime < PRUNE_EVERY:
                return
        except FileNotFoundError:
            pass
        with contextlib.suppress(OSError):
            marker.touch()
            self.prune_tombstones()

    def prune_tombstones(self, ttl: float = TOMBSTONE_TTL) -> None:
        directory = self.root / "tombstone"
        if not directory.is_dir():
            return
        now, boot = boottime_ns(), boot_id()
        for path in directory.iterdir():
            if path.name.startswith("."):
                continue
            try:
                body = json.loads(path.read_bytes())
                stale = body.get("boot") != boot or now - int(body["deletedAt"]) > ttl * 1e9
            except (OSError, ValueError, TypeError, KeyError, AttributeError):
                stale = True
            if stale:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()

    # ------------------------------------------------------------ VF lock
    @contextlib.contextmanager
    def vf_lock(self, pci: str, timeout: float = 60.0) -> Iterator[None]:
        """Exclusive ``flock`` on the VF; :class:`VfBusyError` after ``timeout`` seconds."""
        bdf = validate.pci_address(pci)
        with _flock(self._dir("pci", "vf_lock") / f"{bdf}.lock", timeout, bdf):
            yield

    # ------------------------------------------------------------ VF ownership
    def _owner_path(self, pci: str) -> Path:
        return self._dir("pci", "owner") / validate.pci_address(pci)

    def owner(self, pci: str) -> VfOwner | None:
        """The attachment holding the VF (None: free, or an unreadable owner record)."""
        raw = self._owner_raw(pci)
        if raw is None:
            return None
        return VfOwner(str(raw.get("containerID") or ""), str(raw.get("ifname") or ""),
                       str(raw.get("netns") or ""))

    def owner_record(self, pci: str) -> AttachmentRecord | None:
        """The copy of the owner's attachment record (recovers a damaged one), or None."""
        raw = self._owner_raw(pci)
        try:
            return AttachmentRecord.from_json(raw.get("record")) if raw else None
        except DamagedRecord:
            return None

    def _owner_raw(self, pci: str) -> dict[str, Any] | None:
        path = self._owner_path(pci)
        try:
            record = json.loads(path.read_bytes())
        except FileNotFoundError:
            return None
        except ValueError:
            log.warning("corrupt owner record for %s; treating VF as free", pci)
            return None
        return record if isinstance(record, dict) else None

    def owners(self) -> list[tuple[str, VfOwner]]:
        """(bdf, owner) of every VF owner record."""
        directory = self.root / "pci" / "owner"
        if not directory.is_dir():
            return []
        out = []
        for path in sorted(directory.iterdir()):
            if path.name.startswith("."):
                continue
            with contextlib.suppress(InvalidInputError):
                owner = self.owner(path.name)
                if owner is not None:
                    out.append((path.name, owner))
        return out

    def set_owner(self, pci: str, record: AttachmentRecord) -> None:
        """The VF belongs to ``record``'s attachment; a copy of the record rides along."""
        body = {"containerID": record.container_id, "ifname": record.ifname,
                "netns": record.netns, "record": record.to_json()}
        self._write(self._owner_path(pci), json.dumps(body, sort_keys=True).encode(), "write-owner")

    def clear_owner(self, pci: str, container_id: str, ifname: str) -> bool:
        """Remove the owner record only if it still names this attachment (sriov-cni #219).

        A late DEL of an old pod must not free a VF that a new pod now owns. Returns whether
        the record was removed. Call it while holding :meth:`vf_lock`.
        """
        current = self.owner(pci)
        if current is None:
            return False
        if current.key != (container_id, ifname):
            log.info("VF %s now owned by %s/%s; leaving its owner record",
                     pci, current.container_id, current.ifname)
            return False
        with contextlib.suppress(FileNotFoundError):
            self._owner_path(pci).unlink()
        return True


def _parse(path: Path, data: bytes) -> AttachmentRecord:
    try:
        raw = json.loads(data)
    except (ValueError, RecursionError):
        raise DamagedRecord(f"{path}: not JSON ({len(data)} bytes; truncated?)") from None
    try:
        return AttachmentRecord.from_json(raw)
    except DamagedRecord as e:
        raise DamagedRecord(f"{path}: {e}") from None


@contextlib.contextmanager
def _flock(path: Path, timeout: float, what: str) -> Iterator[int]:
    """Exclusive ``flock`` on ``path`` polled to ``timeout`` (flock has no timed wait).

    Yields the fd. A holder may unlink the file before releasing it (:func:`unlink_locked`):
    a waiter that opened the old inode notices it is no longer at ``path`` and retries.
    """
    deadline = time.monotonic() + timeout
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as e:
                    if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                        raise
                    if time.monotonic() >= deadline:
                        raise VfBusyError(what, f"held by another verb for {timeout:g}s") from e
                    time.sleep(LOCK_POLL_INTERVAL)
            try:
                current = os.stat(path)
            except FileNotFoundError:
                continue  # unlinked by the holder we waited for: lock the new file
            mine = os.fstat(fd)
            if (current.st_dev, current.st_ino) != (mine.st_dev, mine.st_ino):
                continue
            yield fd
            return
        finally:
            os.close(fd)  # closing drops the flock
