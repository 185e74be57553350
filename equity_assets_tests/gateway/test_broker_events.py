"""``POST /v1/brokers/events``: signed by the broker's own secret, written as the broker (RLS), once."""

from __future__ import annotations

import base64
import json
import uuid

import psycopg
import requests

from equity_assets.security.signing import sign_standard_webhook

from .conftest import T0
from .portal_fixtures import portal_env, two_brokers  # noqa: F401 (fixtures)

SECRET_A = "whsec_" + base64.b64encode(b"a" * 32).decode()
SECRET_B = "whsec_" + base64.b64encode(b"b" * 32).decode()


def give_secrets(gateway, two_brokers) -> None:
    a, b = two_brokers
    with psycopg.connect(gateway.postgres.resolved_dsn(), autocommit=True) as conn:
        conn.execute("SET ROLE service_role")
        conn.execute("INSERT INTO broker_notify_secrets (broker_id, secret) VALUES (%s, %s), (%s, %s)",
                     (a.id, SECRET_A, b.id, SECRET_B))


def post(gateway, doc: dict, secret: str, *, timestamp: int = T0, body: bytes | None = None) -> requests.Response:
    raw = body if body is not None else json.dumps(doc).encode()
    headers = sign_standard_webhook(raw, secret, f"msg_{uuid.uuid4().hex}", timestamp)
    return requests.post(f"{gateway.url}/v1/brokers/events", data=raw,
                         headers={**headers, "content-type": "application/json"}, timeout=10)


def test_signed_report_is_recorded_once(gateway, two_brokers):
    a, _ = two_brokers
    give_secrets(gateway, two_brokers)
    doc = {"broker_id": str(a.id), "lead_id": str(a.leads[0]), "event_type": "loan_funded", "external_id": "LOS-1"}
    first = post(gateway, doc, SECRET_A)
    assert first.status_code == 201 and first.json()["duplicate"] is False
    again = post(gateway, doc, SECRET_A)
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert gateway.query("SELECT event_type, source, external_id FROM billing_events") == [("loan_funded", "api", "LOS-1")]


def test_signature_must_be_the_brokers_own_and_over_the_raw_bytes(gateway, two_brokers):
    a, b = two_brokers
    give_secrets(gateway, two_brokers)
    doc = {"broker_id": str(a.id), "lead_id": str(a.leads[0]), "event_type": "application_submitted"}
    assert post(gateway, doc, SECRET_B).status_code == 401  # B's secret cannot speak for A
    raw = json.dumps(doc).encode()
    headers = sign_standard_webhook(raw, SECRET_A, "msg_x", T0)
    reserialized = json.dumps(doc, indent=1).encode()
    answer = requests.post(f"{gateway.url}/v1/brokers/events", data=reserialized, headers=headers, timeout=10)
    assert answer.status_code == 401
    assert post(gateway, doc, SECRET_A, timestamp=T0 - 301).status_code == 401
    assert gateway.query("SELECT count(*) FROM billing_events") == [(0,)]


def test_another_brokers_lead_is_404_and_appointments_cannot_be_reported(gateway, two_brokers):
    a, b = two_brokers
    give_secrets(gateway, two_brokers)
    theirs = post(gateway, {"broker_id": str(a.id), "lead_id": str(b.leads[0]), "event_type": "loan_funded"}, SECRET_A)
    unknown = post(gateway, {"broker_id": str(a.id), "lead_id": str(uuid.uuid4()), "event_type": "loan_funded"}, SECRET_A)
    assert theirs.status_code == unknown.status_code == 404
    assert theirs.json() == unknown.json()
    appointment = post(gateway, {"broker_id": str(a.id), "lead_id": str(a.leads[0]), "event_type": "appointment_set"},
                       SECRET_A)
    assert appointment.status_code == 400
    assert post(gateway, {}, SECRET_A, body=b"not json").status_code == 400
    assert gateway.query("SELECT count(*) FROM billing_events") == [(0,)]


def test_a_broker_without_a_secret_cannot_report(gateway, two_brokers):
    a, _ = two_brokers
    doc = {"broker_id": str(a.id), "lead_id": str(a.leads[0]), "event_type": "loan_funded"}
    assert post(gateway, doc, SECRET_A).status_code == 401
