"""A lead's compliance evidence: what a defence against a TCPA claim needs, from the tables alone.

Consent proof (every granted/revoked decision with token, disclosure version, IP, user agent and
time), every e-mail send and call with its UTC and local time, every suppression with its source.
The calling gate keeps no per-call record, so each call's ``gate`` is the gate's time check re-run
for the moment the attempt was reserved, next to the consent and suppressions in force then
(``recomputed: true`` says so). Read-only; the report is for the operator, never a broker.
"""

from __future__ import annotations

import html
import uuid
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from psycopg.rows import dict_row

from . import zones
from .gate import check_window

_LEAD_SQL = """SELECT id, first_name, last_name, email, phone, consented_phone, property_zip, property_state,
                      mailing_zip, mailing_state, campaign_status::text AS campaign_status, assigned_broker_id
               FROM leads WHERE id = %s"""
_CONSENT_SQL = """SELECT a.id, a.decision, a.reason, a.method, a.phone_number, a.disclosure_version, host(a.ip) AS ip,
                         a.user_agent, a.created_at, a.broker_id, t.id AS token_id, t.batch_date AS token_batch_date,
                          t.issued_at AS token_issued_at, t.used_at AS token_used_at
                  FROM lead_consent_audit a LEFT JOIN consent_tokens t ON t.nonce_hash = a.token_nonce_hash
                  WHERE a.lead_id = %s ORDER BY a.created_at, a.id"""
_SENDS_SQL = """SELECT batch_date, campaign_id, status, pushed_at, created_at, consent_token_id, error
                FROM campaign_sends WHERE lead_id = %s ORDER BY batch_date"""
_CALLS_SQL = """SELECT id, attempt_number, dialed_number, status, outcome, ended_reason, created_at, started_at,
                       ended_at, vapi_call_id
                FROM calls WHERE lead_id = %s ORDER BY attempt_number"""
# Suppressions of the lead's address or numbers, whoever recorded them.
_SUPPRESSIONS_SQL = """SELECT channel, value, reason, source, created_at, expires_at
                       FROM suppression_list
                       WHERE lead_id = %(lead)s
                          OR (channel = 'email' AND value = %(email)s)
                          OR (channel = 'phone' AND value = ANY(%(phones)s))
                       ORDER BY created_at"""


def _utc(moment: datetime | None) -> str | None:
    return moment.astimezone(ZoneInfo("UTC")).isoformat() if moment else None


def _local_zone(lead: dict[str, Any]) -> str | None:
    """The property's zone when it has exactly one (else local time would be a guess)."""
    found = zones.place_zones(lead["property_zip"], lead["property_state"])
    return next(iter(found)) if len(found) == 1 else None


def _local(moment: datetime | None, zone: str | None) -> str | None:
    return moment.astimezone(ZoneInfo(zone)).isoformat() if moment and zone else None


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return _utc(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def _row(row: dict[str, Any]) -> dict[str, Any]:
    return {k: _jsonable(v) for k, v in row.items()}


def _gate_at(lead: dict[str, Any], call: dict[str, Any], consents: list[dict[str, Any]],
             suppressions: list[dict[str, Any]]) -> dict[str, Any]:
    at = call["created_at"]
    window = check_window(at, property_zip=lead["property_zip"], property_state=lead["property_state"],
                          mailing_zip=lead["mailing_zip"], mailing_state=lead["mailing_state"],
                          phone=call["dialed_number"])
    decisions = [c for c in consents if c["created_at"] <= at and c["decision"] in ("granted", "revoked")]
    consent = decisions[-1] if decisions and decisions[-1]["decision"] == "granted" else None
    in_force = [s for s in suppressions if s["created_at"] <= at
                and (s["expires_at"] is None or s["expires_at"] > at)
                and (s["channel"] == "phone" and s["value"] == call["dialed_number"])]
    return {"recomputed": True, "window": window.as_dict(),
            "consent_audit_id": consent["id"] if consent else None,
            "phone_suppressed": bool(in_force),
            "allowed": window.allowed and consent is not None and not in_force}


def lead_evidence(conn: psycopg.Connection, lead_id: str) -> dict[str, Any]:
    """Everything on record about contacting one lead, in one read-only transaction."""
    with conn.transaction():
        conn.execute("SET TRANSACTION READ ONLY")
        cur = conn.cursor(row_factory=dict_row)
        lead = cur.execute(_LEAD_SQL, (lead_id,)).fetchone()
        if lead is None:
            raise LookupError(f"no lead {lead_id}")
        consents = cur.execute(_CONSENT_SQL, (lead_id,)).fetchall()
        sends = cur.execute(_SENDS_SQL, (lead_id,)).fetchall()
        calls = cur.execute(_CALLS_SQL, (lead_id,)).fetchall()
        phones = [p for p in {lead["phone"], lead["consented_phone"], *(c["dialed_number"] for c in calls)} if p]
        suppressions = cur.execute(_SUPPRESSIONS_SQL, {"lead": lead_id, "email": lead["email"],
                                                       "phones": phones}).fetchall()
    zone = _local_zone(lead)
    return {
        "lead": _row(lead) | {"local_zone": zone},
        "consent": [_row(c) | {"local_time": _local(c["created_at"], zone)} for c in consents],
        "emails": [_row(s) | {"pushed_at_local": _local(s["pushed_at"], zone)} for s in sends],
        "calls": [_row(c) | {"created_at_local": _local(c["created_at"], zone),
                             "started_at_local": _local(c["started_at"], zone),
                             "gate": _gate_at(lead, c, consents, suppressions)} for c in calls],
        "suppressions": [_row(s) | {"local_time": _local(s["created_at"], zone)} for s in suppressions],
        "generated_at": _utc(datetime.now(ZoneInfo("UTC"))),
    }


def _table(title: str, rows: list[dict[str, Any]]) -> str:
    if not rows:
        return f"<h2>{html.escape(title)}</h2><p>None on record.</p>"
    columns = [k for k in rows[0] if k != "gate"]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(r.get(c)) if r.get(c) is not None else '')}</td>"
                                    for c in columns) + "</tr>" for r in rows)
    return f"<h2>{html.escape(title)}</h2><table><tr>{head}</tr>{body}</table>"


def render_html(evidence: dict[str, Any]) -> str:
    """The report as one self-contained HTML page (every value escaped)."""
    lead = evidence["lead"]
    gates = [{"call": c["id"], "attempt": c["attempt_number"], "allowed": c["gate"]["allowed"],
              "local_times": ", ".join(c["gate"]["window"]["local_times"]),
              "reasons": ", ".join(c["gate"]["window"]["reasons"]),
              "consent_audit_id": c["gate"]["consent_audit_id"], "phone_suppressed": c["gate"]["phone_suppressed"]}
             for c in evidence["calls"]]
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Compliance evidence "
        f"{html.escape(lead['id'])}</title><style>table{{border-collapse:collapse}}td,th{{border:1px solid #999;"
        "padding:2px 6px;font:12px monospace}}</style></head><body>"
        f"<h1>Compliance evidence for lead {html.escape(lead['id'])}</h1>"
        f"<p>Generated {html.escape(evidence['generated_at'])} (UTC); local zone "
        f"{html.escape(lead['local_zone'] or 'ambiguous')}.</p>"
        + _table("Consent decisions", evidence["consent"])
        + _table("E-mails", evidence["emails"])
        + _table("Calls", evidence["calls"])
        + _table("Calling gate at each call (recomputed)", gates)
        + _table("Suppressions and revocations", evidence["suppressions"])
        + "</body></html>"
    )
