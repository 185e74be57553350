"""What the portal and the API read and write, on a connection from ``access.as_broker``.

Reads name no broker: row-level security limits every one of them to the caller's rows. Writes
name the broker as well, and RLS checks that it is the caller.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

LEAD_STATUSES = ("new", "queued", "active", "replied", "converted", "do_not_contact")
REPORTABLE_EVENTS = ("application_submitted", "loan_funded")
BILLING_EVENT_TYPES = ("appointment_set", *REPORTABLE_EVENTS)
TIME_ZONE = "America/Los_Angeles"

LEAD_COLUMNS = """id, first_name, last_name, property_address, property_city, property_state, property_zip,
    email, phone, lead_score, campaign_status::text AS status, email_verified, phone_verified, consent,
    consented_at, estimated_value, equity, call_attempt_count, created_at, updated_at"""


@dataclass(frozen=True)
class LeadFilter:
    status: str | None = None
    state: str | None = None
    min_score: float | None = None
    max_score: float | None = None
    q: str | None = None
    limit: int = 50
    offset: int = 0


def _rows(conn: psycopg.Connection, query: str, params: tuple | dict = ()) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(query, params).fetchall()


def list_leads(conn: psycopg.Connection, f: LeadFilter) -> tuple[int, list[dict[str, Any]]]:
    """(matching count, one page of leads), best score first."""
    where, params = ["true"], {}
    if f.status:
        where.append("campaign_status = %(status)s::campaign_status")
        params["status"] = f.status
    if f.state:
        where.append("property_state = %(state)s")
        params["state"] = f.state
    if f.min_score is not None:
        where.append("lead_score >= %(min_score)s")
        params["min_score"] = f.min_score
    if f.max_score is not None:
        where.append("lead_score <= %(max_score)s")
        params["max_score"] = f.max_score
    if f.q:
        where.append("""(concat_ws(' ', first_name, last_name, property_address, property_city, email, phone)
                          ILIKE %(q)s)""")
        params["q"] = "%" + f.q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    clause = " AND ".join(where)
    total = conn.execute(f"SELECT count(*) FROM leads WHERE {clause}", params).fetchone()[0]
    rows = _rows(conn, f"""SELECT {LEAD_COLUMNS} FROM leads WHERE {clause}
                           ORDER BY lead_score DESC NULLS LAST, id LIMIT %(limit)s OFFSET %(offset)s""",
                 {**params, "limit": f.limit, "offset": f.offset})
    return total, rows


def lead(conn: psycopg.Connection, lead_id: uuid.UUID) -> dict[str, Any] | None:
    found = _rows(conn, f"""SELECT {LEAD_COLUMNS}, address_codes, email_codes, phone_codes, verification_provider,
                                   verified_at, consented_phone, broker_notes
                              FROM leads WHERE id = %s""", (lead_id,))
    return found[0] if found else None


def calls(conn: psycopg.Connection, lead_id: uuid.UUID | None = None, limit: int = 50, offset: int = 0) -> list[dict]:
    return _rows(conn, """SELECT id, lead_id, attempt_number, status, outcome, ended_reason, started_at, ended_at,
                                 created_at FROM calls WHERE (%(lead)s::uuid IS NULL OR lead_id = %(lead)s)
                          ORDER BY created_at DESC, id LIMIT %(limit)s OFFSET %(offset)s""",
                 {"lead": lead_id, "limit": limit, "offset": offset})


def billing_events(conn: psycopg.Connection, lead_id: uuid.UUID | None = None, limit: int = 500,
                   offset: int = 0) -> list[dict]:
    return _rows(conn, """SELECT e.id, e.lead_id, e.event_type, e.source, e.occurred_at, e.invoice_id,
                                 concat_ws(' ', l.first_name, l.last_name) AS lead_name
                            FROM billing_events e LEFT JOIN leads l ON l.id = e.lead_id
                           WHERE (%(lead)s::uuid IS NULL OR e.lead_id = %(lead)s)
                           ORDER BY e.occurred_at DESC, e.id LIMIT %(limit)s OFFSET %(offset)s""",
                 {"lead": lead_id, "limit": limit, "offset": offset})


def invoices(conn: psycopg.Connection) -> list[dict]:
    return _rows(conn, """SELECT id, period_start, period_end, total, line_items, status, revision, event_count,
                                 updated_at FROM invoices ORDER BY period_start DESC""")


def consent_trail(conn: psycopg.Connection, lead_id: uuid.UUID | None = None, limit: int = 200) -> list[dict]:
    return _rows(conn, """SELECT a.lead_id, a.decision, a.reason, a.phone_number, a.disclosure_version, a.method,
                                 a.created_at, concat_ws(' ', l.first_name, l.last_name) AS lead_name
                            FROM lead_consent_audit a LEFT JOIN leads l ON l.id = a.lead_id
                           WHERE (%(lead)s::uuid IS NULL OR a.lead_id = %(lead)s)
                           ORDER BY a.created_at DESC LIMIT %(limit)s""", {"lead": lead_id, "limit": limit})


def consent_tokens(conn: psycopg.Connection, lead_id: uuid.UUID | None = None, limit: int = 200) -> list[dict]:
    return _rows(conn, """SELECT lead_id, batch_date, issued_at, expires_at, used_at FROM consent_tokens
                           WHERE (%(lead)s::uuid IS NULL OR lead_id = %(lead)s)
                           ORDER BY issued_at DESC LIMIT %(limit)s""", {"lead": lead_id, "limit": limit})


def me(conn: psycopg.Connection) -> dict[str, Any]:
    return _rows(conn, """SELECT id, name, email, territory_states, daily_cap, notify_url, email_preferences
                            FROM brokers""")[0]


def dashboard(conn: psycopg.Connection) -> dict[str, Any]:
    """Active leads, today's calls (Pacific day) and the latest appointments."""
    counts = _rows(conn, f"""SELECT
        (SELECT count(*) FROM leads WHERE campaign_status IN ('queued', 'active', 'replied')) AS active_leads,
        (SELECT count(*) FROM leads) AS all_leads,
        (SELECT count(*) FROM calls WHERE (created_at AT TIME ZONE '{TIME_ZONE}')::date
                                        = (now() AT TIME ZONE '{TIME_ZONE}')::date) AS calls_today,
        (SELECT count(*) FROM leads WHERE consent) AS consented""")[0]
    appointments = _rows(conn, """SELECT e.lead_id, e.occurred_at, concat_ws(' ', l.first_name, l.last_name) AS lead_name,
                                         l.phone FROM billing_events e JOIN leads l ON l.id = e.lead_id
                                   WHERE e.event_type = 'appointment_set' ORDER BY e.occurred_at DESC LIMIT 10""")
    return {**counts, "appointments": appointments}


FUNNEL_STAGES = ("Leads", "Verified", "Replied", "Consented", "Appointments", "Applications", "Funded")


def funnel(conn: psycopg.Connection) -> list[tuple[str, int]]:
    row = conn.execute("""SELECT count(*),
                                 count(*) FILTER (WHERE email_verified OR phone_verified),
                                 count(*) FILTER (WHERE last_reply_at IS NOT NULL),
                                 count(*) FILTER (WHERE consent),
                                 (SELECT count(*) FROM billing_events WHERE event_type = 'appointment_set'),
                                 (SELECT count(*) FROM billing_events WHERE event_type = 'application_submitted'),
                                 (SELECT count(*) FROM billing_events WHERE event_type = 'loan_funded')
                            FROM leads""").fetchone()
    return list(zip(FUNNEL_STAGES, row, strict=True))


def weekly_conversion(conn: psycopg.Connection, weeks: int = 12) -> list[tuple[date, int, int]]:
    """(week start, leads assigned that week, appointments that week), oldest first, Pacific weeks."""
    return conn.execute(f"""
        WITH w AS (SELECT generate_series(date_trunc('week', (now() AT TIME ZONE '{TIME_ZONE}')) - (%s - 1) * interval '1 week',
                                          date_trunc('week', (now() AT TIME ZONE '{TIME_ZONE}')), interval '1 week')::date AS week)
        SELECT w.week,
               (SELECT count(*) FROM leads WHERE date_trunc('week', created_at AT TIME ZONE '{TIME_ZONE}')::date = w.week),
               (SELECT count(*) FROM billing_events WHERE event_type = 'appointment_set'
                   AND date_trunc('week', occurred_at AT TIME ZONE '{TIME_ZONE}')::date = w.week)
          FROM w ORDER BY w.week""", (weeks,)).fetchall()


def report_event(conn: psycopg.Connection, lead_id: uuid.UUID, broker_id: uuid.UUID, event_type: str,
                 source: str, external_id: str | None = None) -> bool:
    """Record an application or a funded loan; False when it was already recorded.

    Raises ``psycopg.errors.InsufficientPrivilege`` when the lead is not the broker's (RLS).
    """
    cur = conn.execute("""INSERT INTO billing_events (broker_id, lead_id, event_type, source, external_id)
                          VALUES (%s, %s, %s, %s, %s) ON CONFLICT (lead_id, event_type) DO NOTHING""",
                       (broker_id, lead_id, event_type, source, external_id))
    return cur.rowcount == 1


def update_settings(conn: psycopg.Connection, broker_id: uuid.UUID, notify_url: str | None,
                    preferences: dict[str, bool]) -> None:
    conn.execute("UPDATE brokers SET notify_url = %s, email_preferences = %s WHERE id = %s",
                 (notify_url, Jsonb(preferences), broker_id))


def request_cap(conn: psycopg.Connection, broker_id: uuid.UUID, cap: int) -> None:
    conn.execute("INSERT INTO broker_cap_requests (broker_id, requested_cap) VALUES (%s, %s)", (broker_id, cap))


def cap_requests(conn: psycopg.Connection) -> list[dict]:
    return _rows(conn, "SELECT requested_cap, status, created_at FROM broker_cap_requests ORDER BY created_at DESC LIMIT 5")


def rotate_secret(conn: psycopg.Connection, fresh: str) -> None:
    conn.execute("SELECT rotate_notify_secret(%s)", (fresh,))


def secret_log(conn: psycopg.Connection) -> list[dict]:
    return _rows(conn, "SELECT created_at, retires_at FROM my_notify_secret_log()")
