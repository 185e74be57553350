"""Provider webhooks on a real gateway: auth per provider, store-before-answer, duplicates, limits."""

from __future__ import annotations

import json
from datetime import timedelta

import dagster as dg
import pytest
import requests

from equity_assets.engage.assets import email_replies
from equity_assets.gateway.webhooks import WebhookSettings
from equity_assets.security.webhook_auth import hmac_timestamp_signature

from .conftest import T0

INSTANTLY_SECRET = "instantly-hook-secret-new"
INSTANTLY_OLD = "instantly-hook-secret-old"
VAPI_SECRET = "vapi-hook-secret"
HEADER = "X-Equity-Webhook-Secret"


@pytest.fixture(autouse=True)
def webhook_secrets(monkeypatch):
    monkeypatch.setenv("EQUITY_INSTANTLY_WEBHOOK_SECRETS", f"{INSTANTLY_SECRET},{INSTANTLY_OLD}")
    monkeypatch.setenv("EQUITY_VAPI_WEBHOOK_SECRETS", VAPI_SECRET)
    monkeypatch.delenv("EQUITY_VAPI_WEBHOOK_AUTH", raising=False)


def reply_body(email: str = "ann@example.com", text: str = "yes call me") -> bytes:
    return json.dumps({"timestamp": "2026-11-24T14:02:00Z", "event_type": "reply_received", "workspace": "w1",
                       "campaign_id": "c1", "campaign_name": "Demo", "lead_email": email,
                       "reply_text": text, "reply_subject": "Re: hi"}).encode()


def vapi_body(call_id: str = "call-1", kind: str = "end-of-call-report") -> bytes:
    return json.dumps({"message": {"type": kind, "endedReason": "customer-ended-call",
                                   "call": {"id": call_id}, "timestamp": 1764424920000}}).encode()


def post(gateway, path: str, body: bytes, headers: dict[str, str]) -> requests.Response:
    return requests.post(f"{gateway.url}{path}", data=body, headers={"Content-Type": "application/json", **headers},
                         timeout=10)


def inbox(gateway) -> list[tuple]:
    return gateway.query("SELECT provider, event_key, event_type, status FROM webhook_events ORDER BY id")


def test_instantly_event_is_stored_before_the_200_and_a_retry_is_a_duplicate(gateway):
    body = reply_body()
    first = post(gateway, "/v1/webhooks/instantly", body, {HEADER: INSTANTLY_SECRET})
    assert first.status_code == 200 and first.json()["status"] == "accepted"
    again = post(gateway, "/v1/webhooks/instantly", body, {HEADER: INSTANTLY_SECRET})
    assert again.status_code == 200
    assert again.json() == {"status": "duplicate", "event_id": first.json()["event_id"]}
    rows = inbox(gateway)
    assert len(rows) == 1
    provider, key, event_type, status = rows[0]
    assert (provider, event_type, status) == ("instantly", "reply_received", "pending")
    import hashlib
    assert key == hashlib.sha256(body).hexdigest()


def test_instantly_secret_rotation_accepts_old_and_new(gateway):
    assert post(gateway, "/v1/webhooks/instantly", reply_body("a@x.com"), {HEADER: INSTANTLY_OLD}).status_code == 200
    assert post(gateway, "/v1/webhooks/instantly", reply_body("b@x.com"), {HEADER: INSTANTLY_SECRET}).status_code == 200
    assert len(inbox(gateway)) == 2


@pytest.mark.parametrize("headers, reason", [
    ({}, "missing_secret_header"),
    ({HEADER: "wrong"}, "bad_secret"),
    ({HEADER: INSTANTLY_SECRET + "x"}, "bad_secret"),
    ({"Authorization": f"Bearer {INSTANTLY_SECRET}"}, "missing_secret_header"),
])
def test_instantly_auth_failures_name_the_check_and_store_nothing(gateway, headers, reason):
    answer = post(gateway, "/v1/webhooks/instantly", reply_body(), headers)
    assert answer.status_code == 401
    assert answer.json()["error"] == reason
    assert inbox(gateway) == []
    assert INSTANTLY_SECRET not in answer.text


def test_unconfigured_secret_is_a_503_not_an_open_door(gateway, monkeypatch):
    monkeypatch.delenv("EQUITY_INSTANTLY_WEBHOOK_SECRETS")
    answer = post(gateway, "/v1/webhooks/instantly", reply_body(), {HEADER: ""})
    assert answer.status_code == 503
    assert inbox(gateway) == []


def test_malformed_json_is_400(gateway):
    answer = post(gateway, "/v1/webhooks/instantly", b"{not json", {HEADER: INSTANTLY_SECRET})
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_payload"
    answer = post(gateway, "/v1/webhooks/instantly", b'{"lead_email": "a@b.c"}', {HEADER: INSTANTLY_SECRET})
    assert answer.status_code == 400
    # Valid for Python, not for jsonb: refused up front instead of failing at the insert.
    for body in (b'{"event_type": "reply_received", "x": NaN}', b'{"event_type": "reply_received", "x": "a\\u0000"}',
                 '{"event_type": "reply_received"}'.encode("utf-16")):
        assert post(gateway, "/v1/webhooks/instantly", body, {HEADER: INSTANTLY_SECRET}).status_code == 400
    assert inbox(gateway) == []


def test_oversize_body_is_413(start_gateway):
    gateway = start_gateway(webhooks=WebhookSettings(max_body_bytes=2048))
    body = reply_body(text="x" * 4096)
    answer = post(gateway, "/v1/webhooks/instantly", body, {HEADER: INSTANTLY_SECRET})
    assert answer.status_code == 413
    # Without Content-Length (chunked), the limit holds while streaming.
    streamed = requests.post(f"{gateway.url}/v1/webhooks/instantly", data=iter([body[:1500], body[1500:]]),
                             headers={HEADER: INSTANTLY_SECRET}, timeout=10)
    assert streamed.status_code == 413
    assert inbox(gateway) == []


def test_webhooks_have_their_own_budget_in_the_shared_rate_limiter(start_gateway):
    gateway = start_gateway(rate_limit_per_window=5, rate_limit_window=timedelta(minutes=1),
                            webhooks=WebhookSettings(rate_limit_per_window=3))
    statuses = [post(gateway, "/v1/webhooks/instantly", reply_body(f"r{i}@x.com"), {HEADER: INSTANTLY_SECRET}).status_code
                for i in range(3)]
    assert statuses == [200, 200, 200]
    limited = post(gateway, "/v1/webhooks/instantly", reply_body("late@x.com"), {HEADER: INSTANTLY_SECRET})
    assert limited.status_code == 429 and "Retry-After" in limited.headers
    assert limited.json()["error"] == "rate_limited"
    # Unauthenticated requests are counted too, so a flood of bad secrets is throttled as well.
    assert post(gateway, "/v1/webhooks/instantly", reply_body("x@x.com"), {HEADER: "bad"}).status_code == 429
    assert gateway.upload(b"a,b\r\n1,2\r\n").status_code == 202  # uploads keep their own budget
    keys = {r[0] for r in gateway.query("SELECT client_key FROM gateway_rate_limits")}
    assert keys == {"127.0.0.1", "webhooks:127.0.0.1"}
    assert len(inbox(gateway)) == 3


def test_vapi_bearer_and_legacy_header(gateway):
    ok = post(gateway, "/v1/webhooks/vapi", vapi_body("c1"), {"Authorization": f"Bearer {VAPI_SECRET}"})
    assert ok.status_code == 200
    legacy = post(gateway, "/v1/webhooks/vapi", vapi_body("c2"), {"X-Vapi-Secret": VAPI_SECRET})
    assert legacy.status_code == 200
    assert post(gateway, "/v1/webhooks/vapi", vapi_body("c3"), {}).json()["error"] == "missing_credential"
    assert post(gateway, "/v1/webhooks/vapi", vapi_body("c3"), {"Authorization": "Bearer nope"}).json()["error"] \
        == "bad_credential"
    keys = [r[1] for r in inbox(gateway)]
    assert keys == ["c1:end-of-call-report:1764424920000", "c2:end-of-call-report:1764424920000"]


def test_vapi_duplicate_by_call_type_and_timestamp(gateway):
    headers = {"Authorization": f"Bearer {VAPI_SECRET}"}
    assert post(gateway, "/v1/webhooks/vapi", vapi_body("c9"), headers).json()["status"] == "accepted"
    # Same message re-sent with different whitespace: the same event.
    body = json.dumps(json.loads(vapi_body("c9")), indent=2).encode()
    assert post(gateway, "/v1/webhooks/vapi", body, headers).json()["status"] == "duplicate"
    assert post(gateway, "/v1/webhooks/vapi", vapi_body("c9", "status-update"), headers).json()["status"] == "accepted"
    assert len(inbox(gateway)) == 2


def test_vapi_hmac_plan_over_raw_bytes(gateway, monkeypatch):
    monkeypatch.setenv("EQUITY_VAPI_WEBHOOK_AUTH", "hmac")
    body = vapi_body("h1")
    stamp = str(T0)
    good = {"x-timestamp": stamp, "x-signature": hmac_timestamp_signature(body, VAPI_SECRET, stamp)}
    assert post(gateway, "/v1/webhooks/vapi", body, good).status_code == 200
    reserialized = json.dumps(json.loads(body), separators=(",", ":")).encode()
    assert reserialized != body
    failed = post(gateway, "/v1/webhooks/vapi", reserialized, good)
    assert failed.status_code == 401 and failed.json()["error"] == "bad_signature"
    stale = str(T0 - 301)
    old = {"x-timestamp": stale, "x-signature": hmac_timestamp_signature(body, VAPI_SECRET, stale)}
    assert post(gateway, "/v1/webhooks/vapi", body, old).json()["error"] == "timestamp_too_old"
    assert post(gateway, "/v1/webhooks/vapi", body, {"x-timestamp": stamp}).json()["error"] == "missing_signature"
    # Bearer is not accepted once the HMAC plan is configured.
    assert post(gateway, "/v1/webhooks/vapi", vapi_body("h2"), {"Authorization": f"Bearer {VAPI_SECRET}"}).status_code == 401
    assert len(inbox(gateway)) == 1


def test_crash_between_commit_and_answer_is_processed_once(start_gateway):
    """The request dies after the commit; the provider's retry gets 200, no second row, one reply."""
    crashes = []

    def crash(event_id: int) -> None:
        if not crashes:
            crashes.append(event_id)
            raise RuntimeError("process killed before answering")

    gateway = start_gateway(webhooks=WebhookSettings(after_store=crash))
    body = reply_body("crash@x.com")
    first = post(gateway, "/v1/webhooks/instantly", body, {HEADER: INSTANTLY_SECRET})
    assert first.status_code == 500  # the provider sees a failure and will retry
    retry = post(gateway, "/v1/webhooks/instantly", body, {HEADER: INSTANTLY_SECRET})
    assert retry.status_code == 200 and retry.json() == {"status": "duplicate", "event_id": crashes[0]}
    assert len(inbox(gateway)) == 1
    with gateway.postgres.connection() as conn:
        conn.execute("INSERT INTO leads (email) VALUES ('crash@x.com')")
    for _ in range(2):  # the sensor's run and a manual re-run
        assert dg.materialize([email_replies], resources={"postgres": gateway.postgres}).success
    assert gateway.query("SELECT count(*), min(intent) FROM email_replies") == [(1, "interested")]
