"""Upload files on disk: streamed into a temp file, then moved to a content-addressed path.

Files are named by their SHA-256 (``<dir>/<sha[:2]>/<sha>``), so the same bytes always land in the
same place and a retry or a race between identical uploads cannot produce two copies. Temp files
live in ``<dir>/.incoming`` — the same file system, so the final move is an atomic rename.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

INCOMING = ".incoming"
#: Temp files older than this belong to uploads whose process died; no live upload takes a day.
STALE_AFTER_S = 24 * 3600


def content_path(root: Path, sha256_hex: str) -> Path:
    """Where the file with this content hash is stored."""
    return root / sha256_hex[:2] / sha256_hex


@dataclass
class StagedFile:
    """A temp file being written with an upload's body; removed unless it is promoted."""

    path: Path
    handle: BinaryIO = field(repr=False)
    promoted: bool = False

    @classmethod
    def create(cls, root: Path) -> StagedFile:
        """A new empty temp file under ``root/.incoming`` (mode 0600: uploads carry personal data)."""
        incoming = root / INCOMING
        incoming.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=incoming, prefix="upload-", suffix=".part")
        return cls(Path(name), os.fdopen(fd, "wb"))

    def write(self, chunk: bytes) -> None:
        """Append a piece of the body."""
        self.handle.write(chunk)

    def seal(self) -> None:
        """Flush to stable storage: a 202 promises the bytes survive a crash."""
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()

    def discard(self) -> None:
        """Close and delete the temp file (no-op once it has been promoted)."""
        if not self.handle.closed:
            self.handle.close()
        if not self.promoted:
            # After a promotion the temp name is free and may belong to another upload by now.
            self.path.unlink(missing_ok=True)

    def promote(self, root: Path, sha256_hex: str) -> Path:
        """Move the sealed file to its content-addressed path and return that path.

        When the path already exists it holds the same bytes (same hash), so the copy we have is
        dropped instead of replacing a file a reader may have open.
        """
        final = content_path(root, sha256_hex)
        final.parent.mkdir(parents=True, exist_ok=True)
        if final.exists():
            self.discard()
            return final
        os.replace(self.path, final)
        self.promoted = True
        _fsync_dir(final.parent)
        return final


def _fsync_dir(path: Path) -> None:
    """Persist a rename: the directory entry must reach disk, not just the file's data."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_stale_temp_files(root: Path, older_than_s: float = STALE_AFTER_S, *, now: float | None = None) -> int:
    """Delete temp files a crashed process left in ``root/.incoming``; returns how many.

    Only old files go: other gateway processes may share the folder and be writing fresh ones.
    """
    incoming = root / INCOMING
    if not incoming.is_dir():
        return 0
    cutoff = (time.time() if now is None else now) - older_than_s
    removed = 0
    for part in incoming.glob("upload-*.part"):
        try:
            if part.stat().st_mtime < cutoff:
                part.unlink()
                removed += 1
        except FileNotFoundError:
            continue  # another process cleaned it first
    return removed
