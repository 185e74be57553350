"""Engage fixtures: the consent secret, an autocommit connection, and helpers to fill the inbox."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg.types.json import Jsonb

from equity_assets_tests.conftest import TestDatabase

SECRET = "engage-test-consent-secret-0123456789"


@pytest.fixture(autouse=True)
def consent_secret(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("EQUITY_CONSENT_SECRET", SECRET)
    return SECRET


@pytest.fixture
def db(clean_db: TestDatabase) -> Iterator[psycopg.Connection]:
    """Autocommit connection as the schema owner, for building data and reading results."""
    with psycopg.connect(clean_db.admin_dsn, autocommit=True) as conn:
        yield conn


def add_lead(conn: psycopg.Connection, email: str, *, phone: str = "+15125550101", consent: bool = False,
             status: str = "active", broker_name: str = "Acme Home Loans") -> tuple[uuid.UUID, uuid.UUID]:
    broker = conn.execute("INSERT INTO brokers (name) VALUES (%s) RETURNING id", (broker_name,)).fetchone()[0]
    lead = conn.execute(
        """INSERT INTO leads (email, phone, first_name, assigned_broker_id, campaign_status, consent,
                              consented_phone, email_verified)
           VALUES (%s, %s, 'Ann', %s, %s::campaign_status, %s, %s, true) RETURNING id""",
        (email, phone, broker, status, consent, phone if consent else None),
    ).fetchone()[0]
    return lead, broker


def add_event(conn: psycopg.Connection, event_type: str, email: str | None, text: str | None = None,
              **extra: object) -> int:
    payload = {"timestamp": "2026-11-24T14:02:00Z", "event_type": event_type, "workspace": "w",
               "campaign_id": "c", "campaign_name": "Demo", **extra}
    if email is not None:
        payload["lead_email"] = email
    if text is not None:
        payload["reply_text"] = text
        payload["reply_subject"] = "Re: Your home's equity"
    return conn.execute(
        "INSERT INTO webhook_events (provider, event_key, event_type, payload) VALUES ('instantly', %s, %s, %s) "
        "RETURNING id",
        (uuid.uuid4().hex, event_type, Jsonb(payload)),
    ).fetchone()[0]

