"""Atomic small-file writes (device-info and CDI spec files): readers never see half a file."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomic(path: Path, content: str, *, mode: int = 0o644) -> None:
    """Write ``content`` to a temp file in the same dir, then rename it over ``path``.

    The rename also replaces a read-only ``path`` (only the directory must be writable),
    so files published ``0o444`` can still be rewritten."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(content)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
