"""POST /v1/uploads over real HTTP against a real PostgreSQL."""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import threading
import time
from datetime import timedelta
from urllib.parse import urlsplit

import pytest

from equity_assets.gateway.storage import INCOMING, content_path
from equity_assets.security.signing import sign_request

from .conftest import OLD_SECRET, SECRET, T0, unique_csv


def only_upload_rows(gw):
    return gw.query("SELECT id::text, content_sha256, source, filename, storage_path, byte_size, "
                    "host(client_ip), status, received_at FROM uploads ORDER BY received_at")


def rejection_reasons(gw) -> list[str]:
    return [payload["reason"] for _, payload, _ in gw.events("upload_rejected")]


def assert_nothing_stored(gw) -> None:
    """A refused upload leaves no row, no guard, no file (temp files included)."""
    assert gw.query("SELECT count(*) FROM uploads")[0][0] == 0
    assert gw.query("SELECT count(*) FROM ingest_replay_guard")[0][0] == 0
    assert gw.stored_files() == []


# --------------------------------------------------------------------------- accepted


def test_accepted_upload_writes_one_row_one_guard_one_event_and_the_exact_file(gateway):
    body = unique_csv(50)
    sha = hashlib.sha256(body).hexdigest()

    response = gateway.post(body, {**sign_request(body, SECRET, T0), "X-Filename": "leads%20%C3%BC.csv"},
                            source="propstream")

    assert response.status_code == 202, response.text
    answer = response.json()
    assert answer["content_sha256"] == sha and answer["bytes"] == len(body)
    upload_id = answer["upload_id"]
    [row] = only_upload_rows(gateway)
    stored = content_path(gateway.upload_dir, sha)
    assert row[:8] == (upload_id, sha, "propstream", "leads ü.csv", str(stored), len(body), "127.0.0.1", "received")
    assert stored.name == sha and stored.parent.name == sha[:2]
    assert stored.read_bytes() == body
    assert gateway.stored_files() == [stored]  # the temp file is gone
    assert gateway.query("SELECT content_sha256, upload_id::text, expires_at - first_seen_at FROM ingest_replay_guard") \
        == [(sha, upload_id, timedelta(days=7))]
    [(event_upload, payload, key)] = gateway.events("upload_received")
    assert (event_upload, key) == (upload_id, f"upload_received:{upload_id}")
    assert payload["bytes"] == len(body) and payload["scheme"] == "hmac-sha256" and payload["secret_index"] == 0
    assert gateway.events("upload_rejected") == []


def test_source_defaults_to_csv_and_can_come_from_a_header(gateway):
    first = gateway.upload(unique_csv())
    body = unique_csv()
    second = gateway.post(body, {**sign_request(body, SECRET, T0), "X-Upload-Source": "BatchData"})
    assert (first.status_code, second.status_code) == (202, 202)
    sources = dict(gateway.query("SELECT id::text, source FROM uploads"))
    assert sources == {first.json()["upload_id"]: "csv", second.json()["upload_id"]: "batchdata"}


def test_invalid_source_is_refused_before_the_body(gateway):
    response = gateway.upload(unique_csv(), source="../etc")
    assert response.status_code == 400 and response.json()["error"] == "invalid_source"
    assert rejection_reasons(gateway) == ["invalid_source"]
    assert_nothing_stored(gateway)


def test_upload_signed_with_standard_webhooks_headers_is_accepted(gateway):
    response = gateway.upload_webhook_signed(unique_csv())
    assert response.status_code == 202, response.text
    [(_, payload, _)] = gateway.events("upload_received")
    assert payload["scheme"] == "standard-webhooks"


def test_second_of_two_active_secrets_is_accepted(gateway):
    response = gateway.upload(unique_csv(), secret=OLD_SECRET)
    assert response.status_code == 202, response.text
    [(_, payload, _)] = gateway.events("upload_received")
    assert payload["secret_index"] == 1


# --------------------------------------------------------------------------- signature window


@pytest.mark.parametrize("offset", [-300, 300])
def test_timestamp_exactly_300_s_away_is_accepted(gateway, offset):
    response = gateway.upload(unique_csv(), timestamp=T0 + offset)
    assert response.status_code == 202, response.text


@pytest.mark.parametrize(("offset", "reason"), [(-301, "timestamp_too_old"), (301, "timestamp_in_future")])
def test_timestamp_301_s_away_is_refused(gateway, offset, reason):
    response = gateway.upload(unique_csv(), timestamp=T0 + offset)
    assert response.status_code == 401
    assert response.json()["error"] == reason
    assert rejection_reasons(gateway) == [reason]
    assert_nothing_stored(gateway)


def test_standard_webhooks_window_is_enforced_too(gateway):
    response = gateway.upload_webhook_signed(unique_csv(), timestamp=T0 - 301)
    assert response.status_code == 401 and response.json()["error"] == "timestamp_too_old"


# --------------------------------------------------------------------------- bad signatures


def test_tampered_body_is_refused_and_recorded_without_body_or_secret(gateway):
    body = unique_csv()
    tampered = body.replace(b"Austin", b"Dallas")
    response = gateway.post(tampered, sign_request(body, SECRET, T0))
    assert response.status_code == 401
    assert response.json()["error"] == "bad_signature"
    [(_, payload, _)] = gateway.events("upload_rejected")
    assert payload["reason"] == "bad_signature" and payload["client_ip"] == "127.0.0.1"
    recorded = json.dumps(payload)
    assert SECRET not in recorded and "Dallas" not in recorded and "Austin" not in recorded
    assert_nothing_stored(gateway)


def test_reserialized_json_body_fails(gateway):
    body = b'{"leads":[{"address":"1 Main St","zip":"78701"}]}'
    reserialized = json.dumps(json.loads(body)).encode()  # same data, different bytes
    assert reserialized != body
    response = gateway.post(reserialized, sign_request(body, SECRET, T0))
    assert response.status_code == 401 and response.json()["error"] == "bad_signature"


def test_wrong_secret_is_refused(gateway):
    response = gateway.upload(unique_csv(), secret="not-a-configured-secret")
    assert response.status_code == 401 and response.json()["error"] == "bad_signature"
    assert rejection_reasons(gateway) == ["bad_signature"]


@pytest.mark.parametrize("dropped", ["X-Timestamp", "X-Signature", "X-Content-SHA256"])
def test_missing_signature_header_is_named(gateway, dropped):
    body = unique_csv()
    headers = sign_request(body, SECRET, T0)
    del headers[dropped]
    response = gateway.post(body, headers)
    assert response.status_code == 401
    assert response.json()["error"] == "missing_headers"
    assert dropped.lower() in response.json()["detail"]
    assert rejection_reasons(gateway) == ["missing_headers"]


def test_malformed_timestamp_is_refused(gateway):
    body = unique_csv()
    response = gateway.post(body, {**sign_request(body, SECRET, T0), "X-Timestamp": "1700000000.5"})
    assert response.status_code == 401 and response.json()["error"] == "malformed_timestamp"


def test_content_hash_mismatch_is_refused(gateway):
    body = unique_csv()
    headers = {**sign_request(body, SECRET, T0), "X-Content-SHA256": hashlib.sha256(b"other").hexdigest()}
    response = gateway.post(body, headers)
    assert response.status_code == 401 and response.json()["error"] == "content_hash_mismatch"
    assert rejection_reasons(gateway) == ["content_hash_mismatch"]
    assert_nothing_stored(gateway)


def test_no_configured_secret_is_a_server_error(gateway, monkeypatch):
    monkeypatch.setenv("EQUITY_UPLOAD_SECRETS", " , ")
    response = gateway.upload(unique_csv())
    assert response.status_code == 503 and response.json()["error"] == "signing_not_configured"
    assert rejection_reasons(gateway) == ["signing_not_configured"]


def test_a_scheme_without_a_configured_secret_is_401_not_a_server_error(gateway, monkeypatch, caplog):
    monkeypatch.setenv("EQUITY_UPLOAD_SECRETS", SECRET)  # no whsec_ secret
    with caplog.at_level(logging.WARNING, logger="equity_assets.gateway"):
        response = gateway.upload_webhook_signed(unique_csv())
    assert response.status_code == 401 and response.json()["error"] == "scheme_not_accepted"
    assert rejection_reasons(gateway) == ["scheme_not_accepted"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert_nothing_stored(gateway)


def test_empty_body_is_refused(gateway):
    response = gateway.upload(b"")
    assert response.status_code == 400 and response.json()["error"] == "empty_body"
    assert_nothing_stored(gateway)


# --------------------------------------------------------------------------- replay guard


def test_replay_is_409_with_the_earlier_upload_and_leaves_it_unchanged(gateway):
    body = unique_csv()
    first = gateway.upload(body)
    assert first.status_code == 202
    before = only_upload_rows(gateway)

    again = gateway.upload(body, timestamp=T0 + 1)  # freshly signed: the content, not the signature, repeats

    assert again.status_code == 409
    assert again.json()["error"] == "replay"
    assert again.json()["upload_id"] == first.json()["upload_id"]
    assert only_upload_rows(gateway) == before
    [(_, payload, _)] = gateway.events("upload_rejected")
    assert payload["reason"] == "replay" and payload["earlier_upload_id"] == first.json()["upload_id"]
    assert len(gateway.events("upload_received")) == 1
    assert content_path(gateway.upload_dir, hashlib.sha256(body).hexdigest()).read_bytes() == body


def test_expired_guard_row_is_reused(gateway):
    body = unique_csv()
    first = gateway.upload(body).json()["upload_id"]
    gateway.query("UPDATE ingest_replay_guard SET first_seen_at = now() - interval '8 days', "
                  "expires_at = now() - interval '1 day' RETURNING 1")

    again = gateway.upload(body, timestamp=T0 + 1)

    assert again.status_code == 202, again.text
    second = again.json()["upload_id"]
    assert second != first
    [(guard_upload, live)] = gateway.query("SELECT upload_id::text, expires_at > now() FROM ingest_replay_guard")
    assert (guard_upload, live) == (second, True)
    assert {r[0] for r in only_upload_rows(gateway)} == {first, second}


def test_identical_uploads_racing_get_exactly_one_202(gateway):
    for _ in range(3):
        body = unique_csv(2000)
        barrier = threading.Barrier(2)
        statuses: list = []

        def send(ts: int) -> None:
            headers = sign_request(body, SECRET, ts)
            barrier.wait()
            response = gateway.post(body, headers)
            statuses.append((response.status_code, response.json().get("upload_id")))

        threads = [threading.Thread(target=send, args=(T0 + i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(s for s, _ in statuses) == [202, 409]
        assert len({upload_id for _, upload_id in statuses}) == 1  # the 409 names the winner
    assert gateway.query("SELECT count(*), count(DISTINCT content_sha256) FROM uploads")[0] == (3, 3)
    assert len(gateway.events("upload_received")) == 3


# --------------------------------------------------------------------------- size limit


def test_declared_content_length_over_the_limit_is_413_before_any_body_is_read(start_gateway):
    gw = start_gateway(max_body_bytes=1024)
    body = unique_csv()
    address = urlsplit(gw.url)
    conn = http.client.HTTPConnection(address.hostname, address.port, timeout=5)
    try:
        # Announce 1 GiB and send none of it: only an answer that does not wait for the body arrives.
        conn.putrequest("POST", "/v1/uploads")
        for name, value in {**sign_request(body, SECRET, T0), "Content-Length": str(1 << 30)}.items():
            conn.putheader(name, value)
        conn.endheaders()
        response = conn.getresponse()
        answer = json.loads(response.read())
    finally:
        conn.close()
    assert response.status == 413 and answer["error"] == "payload_too_large"
    [(_, payload, _)] = gw.events("upload_rejected")
    assert payload["reason"] == "payload_too_large" and payload["declared_bytes"] == 1 << 30
    assert_nothing_stored(gw)


def test_streamed_body_over_the_limit_is_413_and_leaves_no_file(start_gateway):
    gw = start_gateway(max_body_bytes=1024)
    body = b"x" * 4096
    chunks = (body[i:i + 512] for i in range(0, len(body), 512))  # a generator: chunked, no Content-Length
    response = gw.post(chunks, sign_request(body, SECRET, T0))
    assert response.request.headers.get("Transfer-Encoding") == "chunked"
    assert "Content-Length" not in response.request.headers
    assert response.status_code == 413 and response.json()["error"] == "payload_too_large"
    [(_, payload, _)] = gw.events("upload_rejected")
    assert payload["reason"] == "payload_too_large" and payload["bytes_received"] > 1024
    assert_nothing_stored(gw)
    assert (gw.upload_dir / INCOMING).is_dir()


def test_streamed_body_of_exactly_the_limit_is_accepted(start_gateway):
    gw = start_gateway(max_body_bytes=1024)
    body = hashlib.sha512(unique_csv()).hexdigest().encode() * 8  # 1024 bytes
    assert len(body) == 1024
    chunks = (body[i:i + 100] for i in range(0, len(body), 100))
    response = gw.post(chunks, sign_request(body, SECRET, T0))
    assert response.status_code == 202, response.text
    assert content_path(gw.upload_dir, hashlib.sha256(body).hexdigest()).read_bytes() == body


# --------------------------------------------------------------------------- hygiene


def test_client_disconnecting_mid_body_leaves_no_temp_file_and_no_row(gateway):
    body = unique_csv()
    address = urlsplit(gateway.url)
    conn = http.client.HTTPConnection(address.hostname, address.port, timeout=5)
    conn.putrequest("POST", "/v1/uploads")
    for name, value in {**sign_request(body, SECRET, T0), "Content-Length": str(100_000)}.items():
        conn.putheader(name, value)
    conn.endheaders()
    conn.send(body)  # far less than announced, then hang up
    deadline = time.monotonic() + 5
    while not list((gateway.upload_dir / INCOMING).glob("*")) and time.monotonic() < deadline:
        time.sleep(0.01)  # wait until the server has started writing the temp file
    assert len(list((gateway.upload_dir / INCOMING).glob("upload-*.part"))) == 1
    conn.close()
    while gateway.stored_files() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert gateway.stored_files() == []
    assert gateway.query("SELECT count(*) FROM uploads")[0][0] == 0


def test_logs_carry_outcome_but_no_secret_body_or_file_name(gateway, caplog):
    caplog.set_level(logging.DEBUG)
    body = unique_csv()
    marker = body.split(b"\r\n")[1].decode()
    accepted = gateway.post(body, {**sign_request(body, SECRET, T0), "X-Filename": "owner-jane-doe.csv"})
    refused = gateway.post(body + b"tampered", sign_request(body, SECRET, T0))
    assert (accepted.status_code, refused.status_code) == (202, 401)
    assert accepted.json()["upload_id"] in caplog.text and "bad_signature" in caplog.text
    for secret_or_pii in (SECRET, OLD_SECRET, marker, "jane-doe", sign_request(body, SECRET, T0)["X-Signature"]):
        assert secret_or_pii not in caplog.text
