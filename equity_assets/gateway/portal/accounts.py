"""Broker accounts for ``equity brokers …`` (run by an operator, as the pipeline's role)."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
from email_validator import EmailNotValidError, validate_email

from .identity import set_password

__all__ = ["add_broker", "list_brokers", "set_password"]


def add_broker(conn: psycopg.Connection, name: str, email: str, states: list[str], daily_cap: int = 250) -> uuid.UUID:
    """A new broker; raises ValueError for a bad e-mail or state, or an e-mail already in use."""
    try:
        email = validate_email(email, check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise ValueError(f"invalid e-mail: {exc}") from None
    states = sorted({s.strip().upper() for s in states if s.strip()})
    if any(len(s) != 2 or not s.isalpha() for s in states):
        raise ValueError("states must be two-letter codes, e.g. CA,NV")
    if not name.strip() or daily_cap < 0:
        raise ValueError("a name and a non-negative daily cap are required")
    try:
        return conn.execute(
            "INSERT INTO brokers (name, email, territory_states, daily_cap) VALUES (%s, %s, %s, %s) RETURNING id",
            (name.strip(), email, states, daily_cap)).fetchone()[0]
    except psycopg.errors.UniqueViolation:
        raise ValueError("a broker with this e-mail already exists") from None


def list_brokers(conn: psycopg.Connection) -> list[dict[str, Any]]:
    rows = conn.execute(
        """SELECT b.id, b.name, b.email, b.territory_states, b.daily_cap, b.active, c.broker_id IS NOT NULL,
                  coalesce(c.locked_until > now(), false), c.last_login_at
             FROM brokers b LEFT JOIN broker_credentials c ON c.broker_id = b.id ORDER BY b.name, b.id""").fetchall()
    keys = ("id", "name", "email", "states", "daily_cap", "active", "has_password", "locked", "last_login_at")
    return [{k: (str(v) if k in ("id", "last_login_at") and v is not None else v) for k, v in zip(keys, r, strict=True)}
            for r in rows]
