"""Two brokers with leads of their own, passwords set, and the portal's secrets in the environment."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import psycopg
import pytest

from equity_assets.gateway.portal import accounts

JWT_SECRET = "jwt-test-secret-0123456789abcdef0123456789"
SESSION_SECRET = "session-test-secret-0123456789abcdef012345"
PASSWORD_A = "correct horse battery A"
PASSWORD_B = "correct horse battery B"


@dataclass
class Broker:
    id: uuid.UUID
    email: str
    password: str
    leads: list[uuid.UUID]


@pytest.fixture
def portal_env(monkeypatch) -> None:
    monkeypatch.setenv("EQUITY_JWT_SECRET", JWT_SECRET)
    monkeypatch.setenv("EQUITY_SESSION_SECRET", SESSION_SECRET)


def add_leads(conn: psycopg.Connection, broker: uuid.UUID, rows: list[tuple[str, str, str, float, str]]) -> list[uuid.UUID]:
    return [conn.execute(
        """INSERT INTO leads (assigned_broker_id, first_name, last_name, property_address, property_city, property_state,
                              lead_score, campaign_status, email, phone, email_verified)
           VALUES (%s, %s, %s, %s, 'Springfield', %s, %s, %s, %s, '+15125550100', true) RETURNING id""",
        (broker, first, last, f"{i + 1} Main St", state, score, status, f"{first.lower()}.{i}@example.com"),
    ).fetchone()[0] for i, (first, last, state, score, status) in enumerate(rows)]


@pytest.fixture
def two_brokers(gateway_db, portal_env) -> tuple[Broker, Broker]:
    """A (3 leads, CA/NV) and B (2 leads, TX)."""
    with psycopg.connect(gateway_db.app_dsn, autocommit=True) as conn:
        conn.execute("SET ROLE service_role")
        a = accounts.add_broker(conn, "Acme Home Loans", "a@acme.example", ["CA", "NV"])
        b = accounts.add_broker(conn, "Bravo Lending", "b@bravo.example", ["TX"])
        accounts.set_password(conn, "a@acme.example", PASSWORD_A)
        accounts.set_password(conn, "B@Bravo.example", PASSWORD_B)
        leads_a = add_leads(conn, a, [("Alice", "Anders", "CA", 91.0, "active"), ("Aaron", "Ames", "NV", 55.0, "queued"),
                                      ("Ava", "Arden", "CA", 72.5, "replied")])
        leads_b = add_leads(conn, b, [("Bob", "Baker", "TX", 88.0, "active"), ("Bea", "Brown", "TX", 40.0, "new")])
    return Broker(a, "a@acme.example", PASSWORD_A, leads_a), Broker(b, "b@bravo.example", PASSWORD_B, leads_b)
