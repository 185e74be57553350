"""Placing calls, in the database: candidates, number assignment, the reservation, and its result.

A call is *reserved* before VAPI is asked to place it: one transaction locks the lead, checks that
nothing changed since the gate looked (attempts, an open call), picks the lead's number, inserts
the ``calls`` row with its idempotency key and counts the attempt. Only then does the asset call
VAPI. A process killed between the two leaves a ``requested`` row without a VAPI id; the next run
places it with the same idempotency key, and the VAPI resource finds the call if it was placed.
So a lead is never called twice for one attempt, and no reserved attempt is forgotten.

VAPI sends each end-of-call report once and never retries it. A call still open half an hour after
it was placed is looked up through VAPI's API; if it has ended, the call object goes into the inbox
as its report (:func:`store_recovered_report`), so no outcome is lost with a lost report.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from ..observe.events import DeadLetter, record_event, send_to_dlq
from .gate import MAX_ATTEMPTS, CallFacts, ConsentEvidence

STAGE = "voice_calls"
OPEN_CALL_HOURS = 2  # a call with no report after this long no longer counts as open (matches the SQL)


def load_candidates(conn: psycopg.Connection, now: datetime, limit: int) -> list[CallFacts]:
    """What the SQL pre-filter finds, as the gate's input."""
    rows = conn.execute("SELECT * FROM voice_call_candidates(%s, %s)", (now, limit)).fetchall()
    return [
        CallFacts(
            lead_id=str(r[0]), broker_id=str(r[1]), dial_number=r[2], campaign_status=r[3], phone_verified=r[4],
            consent=ConsentEvidence(r[5], r[6], r[7], r[8]) if r[7] is not None else None,
            attempts=r[9], last_attempt_at=r[10], calls_last_24h=r[11], next_call_at=r[12], suppressed=r[13],
            flags=frozenset(r[14] or ()), property_zip=r[15], property_state=r[16], mailing_zip=r[17],
            mailing_state=r[18], first_name=r[19],
        )
        for r in rows
    ]


def open_calls(conn: psycopg.Connection, now: datetime) -> tuple[dict[str, int], int]:
    """Calls still open (no report yet, younger than two hours): per broker, and in all."""
    rows = conn.execute(
        """SELECT broker_id, count(*) FROM calls
           WHERE status NOT IN ('ended', 'failed') AND created_at > %s GROUP BY broker_id""",
        (now - timedelta(hours=OPEN_CALL_HOURS),),
    ).fetchall()
    by_broker = {str(b): n for b, n in rows}
    return by_broker, sum(by_broker.values())


@dataclass(frozen=True)
class Reservation:
    """One reserved attempt: what the VAPI request needs."""

    call_id: str
    lead_id: str
    broker_id: str
    attempt: int
    idempotency_key: str
    dial_number: str
    number_id: str
    vapi_phone_number_id: str
    first_name: str | None


def assign_number(conn: psycopg.Connection, lead_id: str, broker_id: str, state: str | None) -> tuple[str, str] | None:
    """The lead's number (id, VAPI phoneNumberId): its open assignment, else the broker's best one —
    same state as the property first (local presence), then the healthiest. None: no usable number."""
    row = conn.execute(
        """SELECT n.id, n.vapi_phone_number_id FROM lead_number_assignments a
           JOIN broker_phone_numbers n ON n.id = a.phone_number_id
           WHERE a.lead_id = %s AND a.status = 'active' AND n.active AND n.vapi_phone_number_id IS NOT NULL""",
        (lead_id,),
    ).fetchone()
    if row:
        return str(row[0]), row[1]
    pick = conn.execute(
        """SELECT id, vapi_phone_number_id FROM broker_phone_numbers
           WHERE broker_id = %s AND active AND vapi_phone_number_id IS NOT NULL
           ORDER BY (state IS NOT DISTINCT FROM %s) DESC, health_score DESC, calls_placed, id
           LIMIT 1""",
        (broker_id, state),
    ).fetchone()
    if pick is None:
        return None
    # An assignment whose number was retired is released, so the lead can move to a live one.
    conn.execute("UPDATE lead_number_assignments SET status = 'released' WHERE lead_id = %s AND status = 'active'",
                 (lead_id,))
    conn.execute(
        """INSERT INTO lead_number_assignments (lead_id, broker_id, phone_number_id) VALUES (%s, %s, %s)
           ON CONFLICT (lead_id) WHERE status IN ('active', 'booked_locked') DO NOTHING""",
        (lead_id, broker_id, pick[0]),
    )
    return str(pick[0]), pick[1]


def reserve_call(conn: psycopg.Connection, facts: CallFacts, now: datetime) -> Reservation | str:
    """Reserve the next attempt for a lead the gate allowed; a reason string when it cannot be."""
    lead = conn.execute(
        """SELECT call_attempt_count, consented_phone, campaign_status::text, property_state
           FROM leads WHERE id = %s FOR UPDATE""",
        (facts.lead_id,),
    ).fetchone()
    if lead is None or lead[0] != facts.attempts or lead[1] != facts.dial_number or lead[2] != facts.campaign_status:
        return "changed_since_gate"
    if lead[0] >= MAX_ATTEMPTS:
        return "max_attempts"
    busy = conn.execute(
        "SELECT 1 FROM calls WHERE lead_id = %s AND status NOT IN ('ended', 'failed') AND created_at > %s",
        (facts.lead_id, now - timedelta(hours=OPEN_CALL_HOURS)),
    ).fetchone()
    if busy:
        return "call_open"
    number = assign_number(conn, facts.lead_id, facts.broker_id, lead[3])
    if number is None:
        return "no_number"
    attempt = lead[0] + 1
    key = f"call:{facts.lead_id}:{attempt}"
    call_id = conn.execute(
        """INSERT INTO calls (lead_id, broker_id, attempt_number, phone_number_id, dialed_number, idempotency_key,
                              created_at)
           VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id""",
        (facts.lead_id, facts.broker_id, attempt, number[0], facts.dial_number, key, now),
    ).fetchone()[0]
    conn.execute("UPDATE leads SET call_attempt_count = %s, next_call_at = NULL WHERE id = %s", (attempt, facts.lead_id))
    conn.execute(
        "UPDATE lead_number_assignments SET attempts = least(attempts + 1, 5) WHERE lead_id = %s AND status = 'active'",
        (facts.lead_id,),
    )
    return Reservation(str(call_id), facts.lead_id, facts.broker_id, attempt, key, facts.dial_number, number[0],
                       number[1], facts.first_name)


def unplaced_reservations(conn: psycopg.Connection, now: datetime,
                          older_than: timedelta = timedelta(seconds=30)) -> list[Reservation]:
    """Reserved attempts whose VAPI request never finished (the process died after the reservation)."""
    rows = conn.execute(
        """SELECT c.id, c.lead_id, c.broker_id, c.attempt_number, c.idempotency_key, c.dialed_number,
                  c.phone_number_id, n.vapi_phone_number_id, l.first_name
           FROM calls c JOIN broker_phone_numbers n ON n.id = c.phone_number_id JOIN leads l ON l.id = c.lead_id
           WHERE c.status = 'requested' AND c.vapi_call_id IS NULL AND c.created_at < %s AND c.created_at > %s
           ORDER BY c.created_at""",
        (now - older_than, now - timedelta(hours=OPEN_CALL_HOURS)),
    ).fetchall()
    return [Reservation(str(r[0]), str(r[1]), str(r[2]), r[3], r[4], r[5], str(r[6]), r[7], r[8]) for r in rows]


def mark_placed(conn: psycopg.Connection, res: Reservation, vapi_call_id: str, status: str, *,
                run_id: str | None) -> None:
    """VAPI accepted the call: remember its id, count it on the number, log ``call_initiated``."""
    conn.execute(
        """UPDATE calls SET vapi_call_id = %s,
                  status = CASE WHEN status = 'requested' THEN %s ELSE status END
           WHERE id = %s""",
        (vapi_call_id, status if status in ("scheduled", "queued", "ringing", "in-progress") else "queued",
         res.call_id),
    )
    conn.execute("UPDATE leads SET vapi_call_id = %s WHERE id = %s", (vapi_call_id, res.lead_id))
    conn.execute("UPDATE broker_phone_numbers SET calls_placed = calls_placed + 1 WHERE id = %s", (res.number_id,))
    record_event(conn, "call_initiated", stage=STAGE, lead_id=res.lead_id, run_id=run_id, count=1,
                 payload={"call_id": res.call_id, "attempt": res.attempt},
                 idempotency_key=f"call_initiated:{res.call_id}")


def mark_failed(conn: psycopg.Connection, res: Reservation, error: str, *, run_id: str | None) -> None:
    """VAPI refused the call for good: the attempt counts as a failure, and a dead letter says why."""
    conn.execute("UPDATE calls SET status = 'failed', outcome = 'failed', error = %s WHERE id = %s",
                 (error[:500], res.call_id))
    send_to_dlq(conn, STAGE, [DeadLetter(reason=f"VAPI did not place the call: {error[:300]}",
                                         source_ref=f"calls:{res.call_id}",
                                         payload={"lead_id": res.lead_id, "attempt": res.attempt})], run_id=run_id)
    after_failure(conn, res.lead_id, res.attempt, run_id=run_id)


def after_failure(conn: psycopg.Connection, lead_id: str, attempt: int, *, run_id: str | None,
                  retry_in: timedelta = timedelta(hours=4)) -> bool:
    """A failed attempt (no answer, busy, voicemail, error): retry later, or stop after the fifth.
    True when the lead became ``do_not_contact``."""
    if attempt >= MAX_ATTEMPTS:
        conn.execute(
            """UPDATE leads SET campaign_status = 'do_not_contact', next_call_at = NULL
               WHERE id = %s AND campaign_status <> 'converted'""",
            (lead_id,),
        )
        conn.execute("UPDATE lead_number_assignments SET status = 'unreachable' WHERE lead_id = %s AND status = 'active'",
                     (lead_id,))
        record_event(conn, "call_attempts_exhausted", stage=STAGE, lead_id=lead_id, run_id=run_id, count=1,
                     idempotency_key=f"call_attempts_exhausted:{lead_id}")
        return True
    conn.execute("UPDATE leads SET next_call_at = now() + %s WHERE id = %s", (retry_in * attempt, lead_id))
    return False


def stale_open_calls(conn: psycopg.Connection, now: datetime, *, older_than: timedelta = timedelta(minutes=30),
                     limit: int = 200) -> list[str]:
    """VAPI ids of calls still open long after they must have ended (their report may be lost)."""
    rows = conn.execute(
        """SELECT vapi_call_id FROM calls
           WHERE status NOT IN ('ended', 'failed') AND vapi_call_id IS NOT NULL AND created_at < %s
           ORDER BY created_at LIMIT %s""",
        (now - older_than, limit),
    ).fetchall()
    return [r[0] for r in rows]


def store_recovered_report(conn: psycopg.Connection, call: dict[str, Any]) -> bool:
    """Put an ended call, as VAPI's API returns it, in the inbox as its end-of-call report, so
    call_outcomes applies it like any other (if the real report comes later, it is a duplicate)."""
    message = {"type": "end-of-call-report", "endedReason": call.get("endedReason"), "call": call,
               "customer": call.get("customer"), "startedAt": call.get("startedAt"), "endedAt": call.get("endedAt"),
               "cost": call.get("cost"), "artifact": call.get("artifact") or {}, "analysis": call.get("analysis") or {},
               "timestamp": "recovered"}
    return conn.execute(
        """INSERT INTO webhook_events (provider, event_key, event_type, payload)
           VALUES ('vapi', %s, 'end-of-call-report', %s) ON CONFLICT (provider, event_key) DO NOTHING""",
        (f"{call['id']}:end-of-call-report:recovered", Jsonb({"message": message})),
    ).rowcount == 1


def variable_values(res: Reservation) -> dict[str, Any]:
    return {"first_name": res.first_name or ""}
