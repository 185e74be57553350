"""The one writer of `pipeline_events` and `pipeline_dlq`: every stage reports through these.

Names are typed: :class:`Event` for event types, :class:`Stage` for the stage that wrote them,
and :data:`FUNNEL` (the funnel the `pipeline_funnel` asset reports) is built from :class:`Event`, so
a writer and the funnel cannot drift apart by a typo. Row-at-a-time writers use
:func:`record_event` / :func:`send_to_dlq`; set-based writers use :func:`record_lead_events`,
:func:`copy_dead_letters` and :func:`upsert_dead_letters`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import psycopg
from psycopg.types.json import Jsonb


class Stage(StrEnum):
    """Who wrote an event or dead letter: an asset name, or a service."""

    GATEWAY = "gateway"
    STAGED_LEADS = "staged_leads"
    DEDUPED_LEADS = "deduped_leads"
    VERIFIED_LEADS = "verified_leads"
    SCORED_LEADS = "scored_leads"
    CONTACTABLE_LEADS = "contactable_leads"
    DAILY_CAMPAIGN_BATCH = "daily_campaign_batch"
    INSTANTLY_CAMPAIGN_LEADS = "instantly_campaign_leads"
    EMAIL_REPLIES = "email_replies"
    CONSENT = "consent"
    PORTAL = "portal"
    BILLING_INVOICES = "billing_invoices"


class Event(StrEnum):
    """`pipeline_events.event_type` values."""

    UPLOAD_RECEIVED = "upload_received"
    UPLOAD_REJECTED = "upload_rejected"
    REQUEST_REJECTED = "request_rejected"
    UPLOAD_STAGED = "upload_staged"
    UPLOAD_COLUMNS_IGNORED = "upload_columns_ignored"
    UPLOAD_RESTAGED = "upload_restaged"
    UPLOAD_FAILED = "upload_failed"
    DEDUPE_SUCCESS = "dedupe_success"
    EMAIL_VERIFIED = "email_verified"
    PHONE_VERIFIED = "phone_verified"
    LEAD_QUEUED = "lead_queued"
    CONTACTABLE_REFRESHED = "contactable_refreshed"
    CAMPAIGN_QUEUED = "campaign_queued"
    EMAIL_SENT = "email_sent"
    EMAIL_REPLIED = "email_replied"
    EMAIL_BOUNCED = "email_bounced"
    CONSENT_GRANTED = "consent_granted"
    CONSENT_REVOKED = "consent_revoked"
    BROKER_LOGIN = "broker_login"
    BROKER_LOGIN_FAILED = "broker_login_failed"
    CALL_INITIATED = "call_initiated"
    APPOINTMENT_BOOKED = "appointment_booked"
    APPLICATION_SUBMITTED = "application_submitted"


#: The lead funnel, in order: what `pipeline_funnel` measures.
FUNNEL: tuple[Event, ...] = (
    Event.UPLOAD_RECEIVED,
    Event.DEDUPE_SUCCESS,
    Event.EMAIL_VERIFIED,
    Event.CAMPAIGN_QUEUED,
    Event.EMAIL_SENT,
    Event.EMAIL_REPLIED,
    Event.CONSENT_GRANTED,
    Event.CALL_INITIATED,
    Event.APPOINTMENT_BOOKED,
    Event.APPLICATION_SUBMITTED,
)


def record_event(
    conn: psycopg.Connection,
    event_type: Event,
    *,
    stage: Stage | None = None,
    count: int | None = None,
    duration_ms: int | None = None,
    run_id: str | None = None,
    partition_key: str | None = None,
    upload_id: str | None = None,
    lead_id: str | None = None,
    payload: dict[str, Any] | None = None,
    idempotency_key: str | None = None,
) -> bool:
    """Append one event; with an idempotency key a repeat is ignored. True when written.

    The key is claimed by the table's insert trigger (a partitioned table cannot hold a unique
    index on the key alone), which skips a repeated key's row as ON CONFLICT DO NOTHING would.
    """
    cur = conn.execute(
        """INSERT INTO pipeline_events (event_type, stage, count, duration_ms, run_id, partition_key,
                                        upload_id, lead_id, payload, idempotency_key)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
        (str(event_type), _text(stage), count, duration_ms, run_id, partition_key, upload_id, lead_id,
         Jsonb(payload or {}), idempotency_key),
    )
    return cur.rowcount == 1


_LEAD_EVENTS = """
INSERT INTO pipeline_events (event_type, stage, lead_id, run_id, partition_key, count, payload, idempotency_key)
SELECT %(event)s, %(stage)s, t.lead_id, %(run_id)s, %(partition_key)s, 1, %(payload)s,
       CASE WHEN %(keyed)s THEN %(event)s || ':' || t.lead_id END
FROM unnest(%(lead_ids)b::uuid[]) AS t(lead_id)
"""


def record_lead_events(
    conn: psycopg.Connection,
    event_type: Event,
    *,
    stage: Stage,
    lead_ids: Sequence[Any],
    payload: Mapping[str, Any] | None = None,
    run_id: str | None = None,
    partition_key: str | None = None,
    keyed: bool = True,
) -> int:
    """One event per lead in one statement, keyed ``<event>:<lead>``: an event happens once in a lead's life.

    ``payload`` is the same for every lead (an empty object by default). Returns the rows written.
    ``keyed=False`` is for a caller whose own write already happens once per lead (a row inserted
    under a unique key, a status changed by the same statement that returned ``lead_ids``): it
    spares the key claim, a trigger call and a key row per lead, which is most of the cost.
    """
    if not lead_ids:
        return 0
    # The ids go in binary (no text per UUID); the payload is sent once, not once per lead.
    return conn.execute(
        _LEAD_EVENTS,
        {"event": str(event_type), "stage": str(stage), "lead_ids": list(lead_ids),
         "payload": Jsonb(dict(payload or {})),
         "run_id": run_id, "partition_key": partition_key, "keyed": keyed},
    ).rowcount


def record_lead_events_from(
    conn: psycopg.Connection,
    event_type: Event,
    *,
    stage: Stage,
    rows: str,
    run_id: str | None = None,
    partition_key: str | None = None,
) -> int:
    """Unkeyed :func:`record_lead_events` for leads already in the database: ``rows`` is a
    constant query of ``(lead_id, payload)`` (e.g. over the caller's temp table), so nothing
    travels through the client. Returns the rows written."""
    return conn.execute(
        f"""INSERT INTO pipeline_events (event_type, stage, lead_id, run_id, partition_key, count, payload)
            SELECT %(event)s, %(stage)s, r.lead_id, %(run_id)s, %(partition_key)s, 1, r.payload
            FROM ({rows}) AS r(lead_id, payload)""",
        {"event": str(event_type), "stage": str(stage), "run_id": run_id, "partition_key": partition_key},
    ).rowcount


@dataclass(frozen=True)
class DeadLetter:
    """One thing a stage could not process, and why."""

    reason: str
    source_ref: str | None = None
    row_number: int | None = None
    column_name: str | None = None
    payload: dict[str, Any] | None = field(default=None)

    def row(self, stage: Stage, run_id: str | None) -> tuple[Any, ...]:
        return (str(stage), self.source_ref, self.row_number, self.column_name, self.reason,
                Jsonb(self.payload) if self.payload is not None else None, run_id)


_DLQ_COLUMNS = "stage, source_ref, row_number, column_name, reason, payload, run_id"


def send_to_dlq(conn: psycopg.Connection, stage: Stage, letters: Iterable[DeadLetter], *, run_id: str | None = None) -> int:
    """Write dead letters for `stage`; returns how many."""
    rows = [d.row(stage, run_id) for d in letters]
    if not rows:
        return 0
    with conn.cursor() as cur:
        cur.executemany(f"INSERT INTO pipeline_dlq ({_DLQ_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s)", rows)
    return len(rows)


def copy_dead_letters(conn: psycopg.Connection, stage: Stage, letters: Iterable[DeadLetter], *, run_id: str | None = None) -> int:
    """:func:`send_to_dlq` with COPY, for stages that reject rows by the thousand."""
    written = 0
    with conn.cursor().copy(f"COPY pipeline_dlq ({_DLQ_COLUMNS}) FROM STDIN") as copy:
        for letter in letters:
            copy.write_row(letter.row(stage, run_id))
            written += 1
    return written


def clear_pending_dead_letters(conn: psycopg.Connection, stage: Stage, source_ref: str, *, file_level_only: bool = False) -> int:
    """Forget `stage`'s pending dead letters of ``source_ref`` (a re-run replaces them).

    ``file_level_only`` keeps row-level letters (those with a row number).
    """
    condition = " AND row_number IS NULL" if file_level_only else ""
    return conn.execute(
        f"DELETE FROM pipeline_dlq WHERE stage = %s AND source_ref = %s AND status = 'pending'{condition}",
        (str(stage), source_ref),
    ).rowcount


_UPSERT_DEAD_LETTERS = """
WITH incoming AS (
    SELECT * FROM unnest(%(refs)s::text[], %(reasons)s::text[], %(payloads)s::jsonb[]) AS i(source_ref, reason, payload)
), bumped AS (
    -- one pending row per source: a repeat failure counts an attempt instead of adding a row
    UPDATE pipeline_dlq d
    SET attempts = d.attempts + 1, reason = i.reason, payload = i.payload, run_id = %(run_id)s
    FROM incoming i
    WHERE d.stage = %(stage)s AND d.status = 'pending' AND d.source_ref = i.source_ref
    RETURNING d.source_ref
)
INSERT INTO pipeline_dlq (stage, source_ref, reason, payload, attempts, run_id)
SELECT %(stage)s, i.source_ref, i.reason, i.payload, 1, %(run_id)s
FROM incoming i
WHERE i.source_ref NOT IN (SELECT source_ref FROM bumped)
"""


def upsert_dead_letters(
    conn: psycopg.Connection, stage: Stage, letters: Sequence[DeadLetter], *, run_id: str | None = None
) -> int:
    """Dead letters keyed by ``source_ref``: one pending row per source, a repeat adds an attempt."""
    if not letters:
        return 0
    conn.execute(
        _UPSERT_DEAD_LETTERS,
        {
            "refs": [d.source_ref for d in letters],
            "reasons": [d.reason for d in letters],
            "payloads": [Jsonb(d.payload or {}) for d in letters],
            "run_id": run_id,
            "stage": str(stage),
        },
    )
    return len(letters)


def _text(value: StrEnum | None) -> str | None:
    return str(value) if value is not None else None
