"""Upload files on disk: content-addressed placement and cleanup of interrupted uploads."""

from __future__ import annotations

import hashlib
import os
import time

from equity_assets.gateway.storage import INCOMING, StagedFile, content_path, remove_stale_temp_files


def stage(root, data: bytes) -> StagedFile:
    staged = StagedFile.create(root)
    staged.write(data)
    staged.seal()
    return staged


def test_promote_names_the_file_by_its_hash_and_keeps_an_existing_copy(tmp_path):
    data = b"a,b\r\n1,2\r\n"
    sha = hashlib.sha256(data).hexdigest()
    first = stage(tmp_path, data)
    final = first.promote(tmp_path, sha)
    assert final == tmp_path / sha[:2] / sha == content_path(tmp_path, sha)
    assert final.read_bytes() == data and oct(final.stat().st_mode & 0o777) == "0o600"
    inode = final.stat().st_ino

    second = stage(tmp_path, data)
    assert second.promote(tmp_path, sha) == final
    assert final.stat().st_ino == inode  # not replaced under a possible reader
    assert not second.path.exists()
    first.discard()  # after a promotion, discarding must not touch the (reusable) temp name
    assert final.exists() and list((tmp_path / INCOMING).iterdir()) == []


def test_stale_temp_files_are_removed_fresh_ones_kept(tmp_path):
    old = stage(tmp_path, b"old").path
    fresh = stage(tmp_path, b"fresh").path
    day_ago = time.time() - 25 * 3600
    os.utime(old, (day_ago, day_ago))
    assert remove_stale_temp_files(tmp_path) == 1
    assert not old.exists() and fresh.exists()
    assert remove_stale_temp_files(tmp_path / "missing") == 0


def test_gateway_start_clears_stale_temp_files(start_gateway, tmp_path):
    leftover = stage(tmp_path / "uploads", b"interrupted").path
    long_ago = time.time() - 3 * 24 * 3600
    os.utime(leftover, (long_ago, long_ago))
    start_gateway()
    assert not leftover.exists()
