"""VAPI server messages from the webhook inbox → call status and outcomes, one event per transaction.

The claim / retry / dead-letter loop is the shared inbox drain (``observe.inbox``). An event
naming a call we never placed goes to the DLQ at once: no retry will make it ours.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from ..observe.inbox import mark_processed, park
from .outcomes import PROVIDER, STAGE, OutcomeSettings, Report, apply_report, apply_status, find_call

#: Message types we act on; others (transcripts, speech updates, tool calls …) are marked ignored.
HANDLED_TYPES = ("status-update", "end-of-call-report")


@dataclass(frozen=True)
class Processed:
    event_id: int
    outcome: str  # a call outcome, status:<s>, status_stale, duplicate, ignored, dlq or skipped


def ignore_unhandled(conn: psycopg.Connection) -> int:
    """Mark pending VAPI messages we do not act on processed, in one statement."""
    return conn.execute(
        """UPDATE webhook_events SET status = 'processed', outcome = 'ignored', processed_at = now()
           WHERE provider = %s AND status = 'pending' AND NOT (event_type = ANY(%s))""",
        (PROVIDER, list(HANDLED_TYPES)),
    ).rowcount


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
        mark_processed(conn, event_id, "ignored")
        return Processed(event_id, "ignored")
    call_row = find_call(conn, message)
    if call_row is None:
        call = message.get("call") if isinstance(message.get("call"), dict) else {}
        park(conn, STAGE, event_id, "message for a call we did not place", run_id=run_id,
             payload={"type": event_type, "vapi_call_id": call.get("id")})
        return Processed(event_id, "dlq")
    if event_type == "status-update":
        outcome = apply_status(conn, call_row, message.get("status"))
    elif call_row[6] is not None:  # this call already has its report: a replay changes nothing
        outcome = "duplicate"
    else:
        outcome = apply_report(conn, event_id, call_row, Report.from_message(message), settings=settings,
                               run_id=run_id)
    mark_processed(conn, event_id, outcome)
    return Processed(event_id, outcome)
