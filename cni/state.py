"""On-disk CNI state: attachment records, per-VF locks, VF ownership records.

Layout under ``root`` (default ``/var/lib/cni/sriov``, like sriov-cni): directories 0700,
files 0600, every write atomic (tmp + rename; fsync only with ``durable=True``).

- ``<root>/<containerID>-<ifname>``: attachment record (JSON blob defined by the mode)
- ``<root>/pci/vf_lock/<bdf>.lock``: ``flock`` per VF
- ``<root>/pci/owner/<bdf>``: which attachment owns the VF (JSON)
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cni.protocol import CONTAINER_ID_RE
from sriov import validate
from sriov.errors import InvalidInputError, VfBusyError

log = logging.getLogger(__name__)
DEFAULT_STATE_DIR = Path("/var/lib/cni/sriov")
LOCK_POLL_INTERVAL = 0.01


def attachment_key(container_id: str, ifname: str) -> str:
    """``<containerID>-<ifname>``, both validated so the key can never escape the state dir."""
    if not CONTAINER_ID_RE.fullmatch(container_id):
        raise InvalidInputError("container id", container_id, "invalid characters")
    validate.ifname(ifname)
    return f"{container_id}-{ifname}"


def atomic_write(path: Path, data: bytes, mode: int = 0o600, *, durable: bool = False) -> None:
    """tmp + rename: a reader never sees a torn file, even if the writer dies mid-write.

    ``durable`` also fsyncs file and directory (survives power loss). Off by default: it cost
    9-14 ms per pod attach (hack/bench-cni) and buys nothing here, since pod netns and VF
    settings do not survive a reboot either (sriov-cni and host-local do not fsync).
    """
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
    try:
        os.write(fd, data)
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    if not durable:
        return
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class StateStore:
    def __init__(self, root: Path = DEFAULT_STATE_DIR) -> None:
        self.root = Path(root)

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
    def save(self, container_id: str, ifname: str, record: dict[str, Any]) -> None:
        key = attachment_key(container_id, ifname)
        record = {**record, "containerID": container_id, "ifname": ifname}
        atomic_write(self._dir() / key, json.dumps(record, sort_keys=True).encode())

    def load(self, container_id: str, ifname: str) -> dict[str, Any] | None:
        path = self.root / attachment_key(container_id, ifname)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            record = json.loads(data)
        except ValueError:
            log.warning("corrupt attachment record %s; ignoring it", path)
            return None
        return record if isinstance(record, dict) else None

    def delete(self, container_id: str, ifname: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.root / attachment_key(container_id, ifname)).unlink()

    def list_attachments(self) -> list[tuple[str, str, dict[str, Any]]]:
        """(containerID, ifname, record) for every stored attachment (keys read from records)."""
        out = []
        if not self.root.is_dir():
            return out
        for path in sorted(self.root.iterdir()):
            if not path.is_file() or path.name.startswith("."):
                continue
            try:
                record = json.loads(path.read_bytes())
            except (OSError, ValueError):
                log.warning("unreadable attachment record %s; skipping", path)
                continue
            if not isinstance(record, dict):
                continue
            cid, ifn = record.get("containerID"), record.get("ifname")
            if isinstance(cid, str) and isinstance(ifn, str) and path.name == f"{cid}-{ifn}":
                out.append((cid, ifn, record))
            else:
                log.warning("attachment record %s lacks containerID/ifname; skipping", path)
        return out

    # ------------------------------------------------------------ VF lock
    @contextlib.contextmanager
    def vf_lock(self, pci: str, timeout: float = 60.0) -> Iterator[None]:
        """Exclusive ``flock`` on the VF; :class:`VfBusyError` after ``timeout`` seconds."""
        bdf = validate.pci_address(pci)
        path = self._dir("pci", "vf_lock") / f"{bdf}.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as e:
                    if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                        raise
                    if time.monotonic() >= deadline:
                        raise VfBusyError(
                            bdf, f"lock held by another attachment for {timeout:g}s"
                        ) from e
                    time.sleep(LOCK_POLL_INTERVAL)  # flock has no timed wait; poll to the deadline
            yield
        finally:
            os.close(fd)  # closing drops the flock

    # ------------------------------------------------------------ VF ownership
    def _owner_path(self, pci: str) -> Path:
        return self._dir("pci", "owner") / validate.pci_address(pci)

    def owner(self, pci: str) -> dict[str, str] | None:
        path = self._owner_path(pci)
        try:
            record = json.loads(path.read_bytes())
        except FileNotFoundError:
            return None
        except ValueError:
            log.warning("corrupt owner record for %s; treating VF as free", pci)
            return None
        return record if isinstance(record, dict) else None

    def set_owner(self, pci: str, container_id: str, ifname: str, netns: str) -> None:
        attachment_key(container_id, ifname)
        record = {"containerID": container_id, "ifname": ifname, "netns": netns}
        atomic_write(self._owner_path(pci), json.dumps(record, sort_keys=True).encode())

    def clear_owner(self, pci: str, container_id: str, ifname: str) -> bool:
        """Remove the owner record only if it still names this attachment (sriov-cni #219).

        A late DEL of an old pod must not free a VF that a new pod now owns. Returns whether
        the record was removed. Call it while holding :meth:`vf_lock`.
        """
        current = self.owner(pci)
        if current is None:
            return False
        if (current.get("containerID"), current.get("ifname")) != (container_id, ifname):
            log.info(
                "VF %s now owned by %s/%s; leaving its owner record",
                pci,
                current.get("containerID"),
                current.get("ifname"),
            )
            return False
        with contextlib.suppress(FileNotFoundError):
            self._owner_path(pci).unlink()
        return True
