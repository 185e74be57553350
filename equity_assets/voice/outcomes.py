"""What a VAPI server message changes: call status, the call's outcome and its effects on the lead.

Outcome of an end-of-call report, first match wins:

1. the person asked us to stop during the call (transcript) → ``opted_out``;
2. ``analysis.structuredData.outcome`` when it is one we know (the assistant's own verdict);
3. ``endedReason`` mapped by :data:`ENDED_REASON_OUTCOMES` (errors → ``failed``; a conversation
   that ended without a verdict → ``callback``, a person answered and nothing was decided).

Effects, in the transaction that marks the inbox event processed:

=================  ===========================================================================
booked             lead ``converted``, number assignment ``booked_locked``, ``billing_events``
                   ``appointment_set``, a broker notification queued, ``appointment_booked`` event
callback           follow-up time (``structuredData.callbackAt`` or tomorrow) as ``next_call_at``
not_interested     lead ``do_not_contact``, assignment released
opted_out          the same, plus consent revoked (audit row), the number suppressed 5 years
no_answer / busy   retry later (``next_call_at``); the fifth failed attempt → ``do_not_contact``
voicemail / failed
=================  ===========================================================================

A report for a call that already has one changes nothing (idempotent on the call); a report for a
call we never placed goes to the DLQ. Status updates only move a call forward, so one arriving
after the report (out of order) is ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from ..observe.events import record_event
from .calls import after_failure

STAGE = "call_outcomes"
PROVIDER = "vapi"
OUTCOMES = ("booked", "callback", "not_interested", "no_answer", "busy", "voicemail", "opted_out", "failed")
FAILED_ATTEMPT = frozenset({"no_answer", "busy", "voicemail", "failed"})
ANSWERED = frozenset({"booked", "callback", "not_interested", "opted_out"})
#: What the assistant may put in structuredData.outcome, in its words and ours.
STRUCTURED_ALIASES = {
    "booked": "booked", "appointment_booked": "booked", "appointment_set": "booked",
    "callback": "callback", "call_back": "callback", "callback_requested": "callback",
    "not_interested": "not_interested", "no_answer": "no_answer", "busy": "busy", "voicemail": "voicemail",
    "opted_out": "opted_out", "do_not_call": "opted_out",
}
ENDED_REASON_OUTCOMES = {
    "customer-did-not-answer": "no_answer",
    "customer-busy": "busy",
    "voicemail": "voicemail",
    "silence-timed-out": "no_answer",
    "manually-canceled": "failed",
    "customer-ended-call": "callback",
    "assistant-ended-call": "callback",
    "assistant-said-end-call-phrase": "callback",
    "assistant-forwarded-call": "callback",
    "exceeded-max-duration": "callback",
}
# Revocation "by any reasonable means": the words people use to say it on a call.
_OPT_OUT = re.compile(
    r"\b(stop calling|do not call|don'?t call|never call|take me off|remove me|opt(?:[- ])?out|unsubscribe|"
    r"revoke|no more calls|quit calling)\b",
    re.IGNORECASE,
)
_STATUS_RANK = {"requested": 0, "scheduled": 1, "queued": 2, "ringing": 3, "in-progress": 4, "forwarding": 5,
                "ended": 6, "failed": 6}
PHONE_SUPPRESSION = timedelta(days=5 * 365)
DEFAULT_CALLBACK_DELAY = timedelta(days=1)


def person_lines(transcript: str | None) -> str:
    """What the called person said: the ``User:``/``Customer:`` lines, or everything if unlabelled."""
    text = transcript or ""
    lines = [line.split(":", 1)[1] for line in text.splitlines()
             if line.split(":", 1)[0].strip().lower() in ("user", "customer") and ":" in line]
    return "\n".join(lines) if lines else ("" if re.search(r"^\s*(ai|assistant|bot)\s*:", text, re.I | re.M) else text)


def map_outcome(structured_outcome: Any, ended_reason: str | None, transcript: str | None) -> str:
    """The call's outcome (see the module docstring for the order)."""
    if _OPT_OUT.search(person_lines(transcript)):
        return "opted_out"
    if isinstance(structured_outcome, str):
        known = STRUCTURED_ALIASES.get(structured_outcome.strip().lower().replace("-", "_").replace(" ", "_"))
        if known:
            return known
    reason = (ended_reason or "").strip()
    if reason in ENDED_REASON_OUTCOMES:
        return ENDED_REASON_OUTCOMES[reason]
    return "failed"  # call.start.error-*, pipeline-error-*, anything unknown


@dataclass(frozen=True)
class Report:
    """The fields of an end-of-call report we read."""

    call_id: str
    idempotency_key: str | None
    ended_reason: str | None
    structured: dict[str, Any]
    analysis: dict[str, Any]
    transcript: str | None
    started_at: str | None
    ended_at: str | None
    cost: Any

    @classmethod
    def from_message(cls, message: dict[str, Any]) -> Report:
        call = message.get("call") if isinstance(message.get("call"), dict) else {}
        analysis = message.get("analysis") if isinstance(message.get("analysis"), dict) else {}
        artifact = message.get("artifact") if isinstance(message.get("artifact"), dict) else {}
        overrides = call.get("assistantOverrides") if isinstance(call.get("assistantOverrides"), dict) else {}
        metadata = overrides.get("metadata") if isinstance(overrides.get("metadata"), dict) else {}
        structured = analysis.get("structuredData") if isinstance(analysis.get("structuredData"), dict) else {}
        return cls(call_id=str(call.get("id") or ""), idempotency_key=metadata.get("idempotency_key"),
                   ended_reason=message.get("endedReason") or call.get("endedReason"), structured=structured,
                   analysis=analysis, transcript=artifact.get("transcript") or message.get("transcript"),
                   started_at=message.get("startedAt"), ended_at=message.get("endedAt"), cost=message.get("cost"))


def find_call(conn: psycopg.Connection, message: dict[str, Any]) -> tuple | None:
    """Our ``calls`` row for a message (locked): by VAPI id, else by our idempotency key in its metadata."""
    call = message.get("call") if isinstance(message.get("call"), dict) else {}
    cols = "id, lead_id, broker_id, attempt_number, phone_number_id, status, report_event_id, dialed_number"
    row = conn.execute(f"SELECT {cols} FROM calls WHERE vapi_call_id = %s FOR UPDATE", (call.get("id"),)).fetchone()
    if row is None:
        key = ((call.get("assistantOverrides") or {}).get("metadata") or {}).get("idempotency_key")
        if key:
            row = conn.execute(f"SELECT {cols} FROM calls WHERE idempotency_key = %s FOR UPDATE", (key,)).fetchone()
            if row is not None:
                conn.execute("UPDATE calls SET vapi_call_id = coalesce(vapi_call_id, %s) WHERE id = %s",
                             (call.get("id"), row[0]))
    return row


def apply_status(conn: psycopg.Connection, call_row: tuple, status: str | None) -> str:
    """Move the call's status forward; an update older than what we know is ignored."""
    current = call_row[5]
    if not isinstance(status, str) or status not in _STATUS_RANK or status in ("ended", "failed"):
        return "status_ignored"
    if _STATUS_RANK[status] <= _STATUS_RANK.get(current, 0):
        return "status_stale"
    conn.execute("UPDATE calls SET status = %s, last_status_at = now() WHERE id = %s", (status, call_row[0]))
    return f"status:{status}"


def _when(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return stamp if stamp.tzinfo else None


@dataclass(frozen=True)
class OutcomeSettings:
    appointment_fee: Decimal = Decimal("150.00")


def apply_report(conn: psycopg.Connection, event_id: int, call_row: tuple, report: Report, *,
                 settings: OutcomeSettings, run_id: str | None) -> str:
    """Record the report on the call and apply the outcome's effects; returns the outcome."""
    call_id, lead_id, broker_id, attempt, number_id = (str(call_row[0]), str(call_row[1]), str(call_row[2]),
                                                       call_row[3], call_row[4])
    outcome = map_outcome(report.structured.get("outcome"), report.ended_reason, report.transcript)
    follow_up = None
    if outcome == "callback":
        follow_up = _when(report.structured.get("callbackAt")) or (
            (_when(report.ended_at) or datetime.now().astimezone()) + DEFAULT_CALLBACK_DELAY)
    conn.execute(
        """UPDATE calls SET status = 'ended', outcome = %s, ended_reason = %s, started_at = %s, ended_at = %s,
                  cost = %s, analysis = %s, transcript = %s, follow_up_at = %s, report_event_id = %s
           WHERE id = %s""",
        (outcome, report.ended_reason, _when(report.started_at), _when(report.ended_at),
         report.cost if isinstance(report.cost, (int, float)) else None, Jsonb(report.analysis),
         report.transcript, follow_up, event_id, call_id),
    )
    if outcome in ANSWERED:
        conn.execute("UPDATE broker_phone_numbers SET calls_answered = calls_answered + 1 WHERE id = %s", (number_id,))
    refresh_health(conn, number_id)
    record_event(conn, "call_completed", stage=STAGE, lead_id=lead_id, run_id=run_id, count=1,
                 payload={"call_id": call_id, "outcome": outcome, "ended_reason": report.ended_reason},
                 idempotency_key=f"call_completed:{call_id}")
    if outcome == "booked":
        _booked(conn, call_id, lead_id, broker_id, report, settings=settings, run_id=run_id)
    elif outcome == "callback":
        conn.execute(
            """UPDATE leads SET next_call_at = %s WHERE id = %s AND campaign_status NOT IN ('do_not_contact', 'converted')""",
            (follow_up, lead_id))
    elif outcome in ("not_interested", "opted_out"):
        conn.execute(
            "UPDATE leads SET campaign_status = 'do_not_contact', next_call_at = NULL WHERE id = %s "
            "AND campaign_status <> 'converted'", (lead_id,))
        conn.execute("UPDATE lead_number_assignments SET status = 'released' WHERE lead_id = %s AND status = 'active'",
                     (lead_id,))
        if outcome == "opted_out":
            _revoke(conn, call_id, lead_id, broker_id, call_row[7], run_id=run_id)
    else:
        after_failure(conn, lead_id, attempt, run_id=run_id)
    return outcome


def _booked(conn: psycopg.Connection, call_id: str, lead_id: str, broker_id: str, report: Report, *,
            settings: OutcomeSettings, run_id: str | None) -> None:
    conn.execute("UPDATE leads SET campaign_status = 'converted', next_call_at = NULL WHERE id = %s", (lead_id,))
    conn.execute("UPDATE lead_number_assignments SET status = 'booked_locked' WHERE lead_id = %s AND status = 'active'",
                 (lead_id,))
    conn.execute(
        """INSERT INTO billing_events (broker_id, lead_id, call_id, event_type, amount, occurred_at)
           VALUES (%s, %s, %s, 'appointment_set', %s, coalesce(%s, now()))
           ON CONFLICT (lead_id, event_type) DO NOTHING""",
        (broker_id, lead_id, call_id, settings.appointment_fee, _when(report.ended_at)),
    )
    appointment = report.structured.get("appointmentAt")
    conn.execute(
        """INSERT INTO broker_notifications (broker_id, lead_id, call_id, kind, payload)
           VALUES (%s, %s, %s, 'appointment_booked', %s) ON CONFLICT (call_id, kind) DO NOTHING""",
        (broker_id, lead_id, call_id, Jsonb({"type": "appointment_booked", "lead_id": lead_id, "call_id": call_id,
                                             "appointment_at": appointment if isinstance(appointment, str) else None,
                                             "summary": report.analysis.get("summary")})),
    )
    record_event(conn, "appointment_booked", stage=STAGE, lead_id=lead_id, run_id=run_id, count=1,
                 payload={"call_id": call_id}, idempotency_key=f"appointment_booked:{lead_id}")


def _revoke(conn: psycopg.Connection, call_id: str, lead_id: str, broker_id: str, number: str | None, *,
            run_id: str | None) -> None:
    """An opt-out said on the call: consent withdrawn, the number on the internal do-not-call list."""
    conn.execute("UPDATE leads SET consent = false WHERE id = %s", (lead_id,))
    if number:
        conn.execute(
            """INSERT INTO suppression_list (channel, value, reason, source, lead_id, expires_at)
               VALUES ('phone', %s, %s, 'revocation', %s, now() + %s) ON CONFLICT (channel, value) DO NOTHING""",
            (number, f"opt-out said during call {call_id}", lead_id, PHONE_SUPPRESSION),
        )
    conn.execute(
        """INSERT INTO lead_consent_audit (lead_id, broker_id, decision, reason, phone_number, method)
           VALUES (%s, %s, 'revoked', %s, %s, 'voice_call')""",
        (lead_id, broker_id, f"opt-out said during call {call_id}", number),
    )
    record_event(conn, "consent_revoked", stage=STAGE, lead_id=lead_id, run_id=run_id, count=1,
                 payload={"method": "voice_call", "call_id": call_id}, idempotency_key=f"consent_revoked:call:{call_id}")


def refresh_health(conn: psycopg.Connection, number_id: Any) -> None:
    """A number's health = its answer rate over its last 100 finished calls (Laplace-smoothed, 0–100)."""
    conn.execute(
        """UPDATE broker_phone_numbers n SET health_score = s.score
           FROM (SELECT round(100.0 * (count(*) FILTER (WHERE outcome = ANY(%s)) + 1) / (count(*) + 2), 2) AS score
                 FROM (SELECT outcome FROM calls WHERE phone_number_id = %s AND outcome IS NOT NULL
                       ORDER BY created_at DESC LIMIT 100) recent) s
           WHERE n.id = %s""",
        (sorted(ANSWERED), number_id, number_id),
    )
