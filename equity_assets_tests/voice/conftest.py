"""Voice fixtures: consenting leads, broker number pools, VAPI inbox messages, a running sandbox."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from equity_assets_tests.conftest import TestDatabase

NOW = datetime.now(timezone.utc)


@pytest.fixture
def db(clean_db: TestDatabase) -> Iterator[psycopg.Connection]:
    """Autocommit connection as the schema owner, for building data and reading results."""
    with psycopg.connect(clean_db.admin_dsn, autocommit=True) as conn:
        yield conn


@dataclass(frozen=True)
class Lead:
    id: str
    broker_id: str
    phone: str


def add_broker(conn: psycopg.Connection, *, name: str = "Acme Home Loans", notify_url: str | None = None,
               numbers: tuple[tuple[str, str, float], ...] = (("+12125550000", "NY", 90.0),)) -> str:
    """A broker with a pool of (e164, state, health) numbers, each with a VAPI phoneNumberId."""
    broker = conn.execute("INSERT INTO brokers (name, notify_url) VALUES (%s, %s) RETURNING id",
                          (name, notify_url)).fetchone()[0]
    for e164, state, health in numbers:
        conn.execute(
            """INSERT INTO broker_phone_numbers (broker_id, e164, state, vapi_phone_number_id, health_score)
               VALUES (%s, %s, %s, %s, %s)""",
            (broker, e164, state, f"pn-{e164[1:]}", health),
        )
    return str(broker)


def add_consenting_lead(conn: psycopg.Connection, broker_id: str, *, phone: str = "+12125550101",
                        zip_code: str = "10001", state: str = "NY", consent_phone: str | None = None,
                        intent: str = "interested", attempts: int = 0, verified: bool = True,
                        granted_at: datetime | None = None) -> Lead:
    """A lead that replied with interest and signed the consent form for ``consent_phone`` (default: phone)."""
    lead = conn.execute(
        """INSERT INTO leads (email, phone, first_name, assigned_broker_id, campaign_status, consent, consented_phone,
                              phone_verified, last_reply_intent, property_zip, property_state, call_attempt_count,
                              email_verified)
           VALUES (%s, %s, 'Ann', %s, 'replied', true, %s, %s, %s, %s, %s, %s, true) RETURNING id""",
        (f"{uuid.uuid4().hex[:10]}@example.com", phone, broker_id, phone, verified, intent, zip_code, state,
         attempts),
    ).fetchone()[0]
    conn.execute(
        """INSERT INTO lead_consent_audit (lead_id, broker_id, decision, phone_number, disclosure_version, method,
                                           ip, user_agent, created_at)
           VALUES (%s, %s, 'granted', %s, 'pewc-2026-11-v1', 'form', '127.0.0.1', 'test', %s)""",
        (lead, broker_id, consent_phone or phone, granted_at or NOW - timedelta(days=1)),
    )
    return Lead(str(lead), broker_id, phone)


def add_call(conn: psycopg.Connection, lead: Lead, *, attempt: int = 1, vapi_id: str | None = None,
             status: str = "queued") -> tuple[str, str]:
    """A placed call (as voice_calls leaves it); returns (calls.id, vapi call id)."""
    number = conn.execute("SELECT id FROM broker_phone_numbers WHERE broker_id = %s LIMIT 1",
                          (lead.broker_id,)).fetchone()[0]
    conn.execute("""INSERT INTO lead_number_assignments (lead_id, broker_id, phone_number_id) VALUES (%s, %s, %s)
                    ON CONFLICT DO NOTHING""", (lead.id, lead.broker_id, number))
    vapi_id = vapi_id or f"vapi-{uuid.uuid4()}"
    call = conn.execute(
        """INSERT INTO calls (lead_id, broker_id, attempt_number, phone_number_id, vapi_call_id, status, dialed_number,
                              idempotency_key)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id""",
        (lead.id, lead.broker_id, attempt, number, vapi_id, status, lead.phone, f"call:{lead.id}:{attempt}"),
    ).fetchone()[0]
    conn.execute("UPDATE leads SET call_attempt_count = %s, vapi_call_id = %s WHERE id = %s", (attempt, vapi_id, lead.id))
    return str(call), vapi_id


def report_message(vapi_id: str, *, ended_reason: str = "assistant-ended-call", outcome: str | None = "booked",
                   transcript: str = "", timestamp: int = 1, **structured: Any) -> dict[str, Any]:
    analysis: dict[str, Any] = {"summary": "s"}
    if outcome is not None:
        analysis["structuredData"] = {"outcome": outcome, **structured}
    return {"message": {"type": "end-of-call-report", "endedReason": ended_reason,
                        "call": {"id": vapi_id, "status": "ended"}, "startedAt": "2026-07-01T15:00:00+00:00",
                        "endedAt": "2026-07-01T15:03:00+00:00", "cost": 0.31,
                        "artifact": {"transcript": transcript, "messages": []}, "analysis": analysis,
                        "timestamp": timestamp}}


def status_message(vapi_id: str, status: str, *, timestamp: int = 0) -> dict[str, Any]:
    return {"message": {"type": "status-update", "status": status, "call": {"id": vapi_id, "status": status},
                        "timestamp": timestamp}}


def add_inbox(conn: psycopg.Connection, payload: dict[str, Any]) -> int:
    """Store a VAPI message in the inbox as the gateway would."""
    message = payload["message"]
    key = f"{message['call']['id']}:{message['type']}:{message.get('timestamp', '')}:{uuid.uuid4().hex[:6]}"
    return conn.execute(
        "INSERT INTO webhook_events (provider, event_key, event_type, payload) VALUES ('vapi', %s, %s, %s) RETURNING id",
        (key, message["type"], Jsonb(payload)),
    ).fetchone()[0]
