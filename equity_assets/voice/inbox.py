"""VAPI server messages from the webhook inbox → call status and outcomes, one event per transaction.

An event is claimed first (its try counter goes up in a transaction of its own, so a process
killed mid-event has counted the try); after ``max_tries`` it is parked in the DLQ. An event
naming a call we never placed goes to the DLQ at once: no retry will make it ours.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

from ..observe.events import DeadLetter, send_to_dlq
from .outcomes import PROVIDER, STAGE, OutcomeSettings, Report, apply_report, apply_status, find_call

DEFAULT_MAX_TRIES = 3
#: Message types we act on; others (transcripts, speech updates, tool calls …) are marked ignored.
HANDLED_TYPES = ("status-update", "end-of-call-report")


@dataclass(frozen=True)
class Processed:
    event_id: int
    outcome: str  # a call outcome, status:<s>, status_stale, duplicate, ignored, dlq or skipped


def claim(conn: psycopg.Connection, event_id: int) -> int | None:
    """Count a try of a pending event, set its retry time (1, 4, 16 … min); None when not pending."""
    row = conn.execute(
        """UPDATE webhook_events SET attempts = attempts + 1,
                  next_attempt_at = now() + make_interval(mins => power(4, attempts)::int)
           WHERE id = %s AND provider = %s AND status = 'pending' RETURNING attempts""",
        (event_id, PROVIDER),
    ).fetchone()
    return row[0] if row else None


def park(conn: psycopg.Connection, event_id: int, reason: str, *, run_id: str | None,
         payload: dict[str, Any] | None = None) -> None:
    conn.execute(
        """UPDATE webhook_events SET status = 'failed', outcome = 'dlq', last_error = %s, processed_at = now()
           WHERE id = %s""",
        (reason, event_id),
    )
    send_to_dlq(conn, STAGE, [DeadLetter(reason=reason, source_ref=f"webhook_events:{event_id}", payload=payload)],
                run_id=run_id)


def record_failure(conn: psycopg.Connection, event_id: int, tries: int, error: BaseException, *, max_tries: int,
                   run_id: str | None) -> bool:
    """Note a failed try (type and message only); True when the event went to the DLQ."""
    reason = f"{type(error).__name__}: {str(error)[:300]}"
    if tries >= max_tries:
        park(conn, event_id, f"poison event after {tries} tries: {reason}", run_id=run_id)
        return True
    conn.execute("UPDATE webhook_events SET last_error = %s WHERE id = %s", (reason, event_id))
    return False


def ignore_unhandled(conn: psycopg.Connection) -> int:
    """Mark pending VAPI messages we do not act on processed, in one statement."""
    return conn.execute(
        """UPDATE webhook_events SET status = 'processed', outcome = 'ignored', processed_at = now()
           WHERE provider = %s AND status = 'pending' AND NOT (event_type = ANY(%s))""",
        (PROVIDER, list(HANDLED_TYPES)),
    ).rowcount


def _mark(conn: psycopg.Connection, event_id: int, outcome: str) -> None:
    conn.execute(
        "UPDATE webhook_events SET status = 'processed', outcome = %s, processed_at = now(), last_error = NULL "
        "WHERE id = %s",
        (outcome, event_id),
    )


def process_event(conn: psycopg.Connection, event_id: int, *, settings: OutcomeSettings,
                  run_id: str | None = None) -> Processed:
    """Apply one claimed VAPI message, in the caller's transaction."""
    row = conn.execute(
        "SELECT event_type, payload, status FROM webhook_events WHERE id = %s AND provider = %s FOR UPDATE",
        (event_id, PROVIDER),
    ).fetchone()
    if row is None or row[2] != "pending":
        return Processed(event_id, "skipped")
    event_type, payload = row[0], row[1]
    message = payload.get("message") if isinstance(payload, dict) else None
    if event_type not in HANDLED_TYPES or not isinstance(message, dict):
        _mark(conn, event_id, "ignored")
        return Processed(event_id, "ignored")
    call_row = find_call(conn, message)
    if call_row is None:
        call = message.get("call") if isinstance(message.get("call"), dict) else {}
        park(conn, event_id, "message for a call we did not place", run_id=run_id,
             payload={"type": event_type, "vapi_call_id": call.get("id")})
        return Processed(event_id, "dlq")
    if event_type == "status-update":
        outcome = apply_status(conn, call_row, message.get("status"))
    elif call_row[6] is not None:  # this call already has its report: a replay changes nothing
        outcome = "duplicate"
    else:
        outcome = apply_report(conn, event_id, call_row, Report.from_message(message), settings=settings,
                               run_id=run_id)
    _mark(conn, event_id, outcome)
    return Processed(event_id, outcome)
