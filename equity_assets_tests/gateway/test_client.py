"""upload_file: sign, stream and report, against a real gateway."""

from __future__ import annotations

import hashlib
import os
import tracemalloc

import pytest

from equity_assets.gateway import UploadError, upload_file
from equity_assets.gateway.client import uploads_url
from equity_assets.gateway.storage import content_path

from .conftest import OLD_SECRET, unique_csv


def write(path, data: bytes):
    path.write_bytes(data)
    return path


def test_upload_file_signs_with_the_first_env_secret_and_returns_the_answer(gateway, tmp_path, clock):
    data = unique_csv(20_000)  # ~0.5 MB: several read chunks
    file = write(tmp_path / "Lead list ü.csv", data)

    answer = upload_file(file, url=gateway.url, clock=clock)

    sha = hashlib.sha256(data).hexdigest()
    assert answer["status"] == 202 and answer["content_sha256"] == sha and answer["bytes"] == len(data)
    assert gateway.query("SELECT id::text, source, filename FROM uploads") == [
        (answer["upload_id"], "propstream", "Lead list ü.csv")]
    [(_, payload, _)] = gateway.events("upload_received")
    assert payload["secret_index"] == 0
    assert content_path(gateway.upload_dir, sha).read_bytes() == data


def test_upload_file_raises_with_the_servers_error_on_replay(gateway, tmp_path, clock):
    file = write(tmp_path / "a.csv", unique_csv())
    first = upload_file(file, url=f"{gateway.url}/v1/uploads", source="csv", clock=clock)
    with pytest.raises(UploadError) as caught:
        upload_file(file, url=gateway.url, clock=clock)
    assert caught.value.status == 409 and caught.value.error == "replay"
    assert caught.value.body["upload_id"] == first["upload_id"]
    assert "replay" in str(caught.value)


def test_explicit_secret_overrides_the_environment(gateway, tmp_path, clock):
    file = write(tmp_path / "b.csv", unique_csv())
    with pytest.raises(UploadError) as caught:
        upload_file(file, url=gateway.url, secret="not-configured", clock=clock)
    assert (caught.value.status, caught.value.error) == (401, "bad_signature")
    assert upload_file(file, url=gateway.url, secret=OLD_SECRET, clock=clock)["status"] == 202


def test_upload_file_without_any_secret_says_how_to_set_one(tmp_path, monkeypatch):
    monkeypatch.delenv("EQUITY_UPLOAD_SECRETS", raising=False)
    file = write(tmp_path / "c.csv", b"x")
    with pytest.raises(UploadError, match="EQUITY_UPLOAD_SECRETS"):
        upload_file(file, url="http://127.0.0.1:9")


def test_a_large_file_is_streamed_not_held_in_memory(gateway, tmp_path, clock):
    size = 24 * 1024 * 1024
    file = tmp_path / "big.csv"
    with file.open("wb") as f:
        for _ in range(size // (1024 * 1024)):
            f.write(os.urandom(1024 * 1024))
    tracemalloc.start()
    try:
        answer = upload_file(file, url=gateway.url, clock=clock)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert answer["bytes"] == size
    # Client and server run in this process; neither may have held the file (24 MiB) at once.
    assert peak < 8 * 1024 * 1024, peak


def test_uploads_url_accepts_a_base_or_a_full_url():
    assert uploads_url("http://gw:8080") == "http://gw:8080/v1/uploads"
    assert uploads_url("http://gw:8080/v1/uploads/") == "http://gw:8080/v1/uploads"
