"""Writing `pipeline_events` and `pipeline_dlq`: every stage reports through these."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.types.json import Jsonb


def record_event(
    conn: psycopg.Connection,
    event_type: str,
    *,
    stage: str | None = None,
    count: int | None = None,
    duration_ms: int | None = None,
    run_id: str | None = None,
    partition_key: str | None = None,
    upload_id: str | None = None,
    lead_id: str | None = None,
    payload: dict[str, Any] | None = None,
    idempotency_key: str | None = None,
) -> bool:
    """Append one event; with an idempotency key a repeat is ignored. True when written."""
    cur = conn.execute(
        """INSERT INTO pipeline_events (event_type, stage, count, duration_ms, run_id, partition_key,
                                        upload_id, lead_id, payload, idempotency_key)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
           ON CONFLICT (idempotency_key) DO NOTHING""",
        (event_type, stage, count, duration_ms, run_id, partition_key, upload_id, lead_id,
         Jsonb(payload or {}), idempotency_key),
    )
    return cur.rowcount == 1


@dataclass(frozen=True)
class DeadLetter:
    """One thing a stage could not process, and why."""

    reason: str
    source_ref: str | None = None
    row_number: int | None = None
    column_name: str | None = None
    payload: dict[str, Any] | None = field(default=None)


def send_to_dlq(conn: psycopg.Connection, stage: str, letters: Iterable[DeadLetter], *, run_id: str | None = None) -> int:
    """Write dead letters for `stage`; returns how many."""
    rows = [
        (stage, d.source_ref, d.row_number, d.column_name, d.reason,
         Jsonb(d.payload) if d.payload is not None else None, run_id)
        for d in letters
    ]
    if not rows:
        return 0
    with conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO pipeline_dlq (stage, source_ref, row_number, column_name, reason, payload, run_id)
               VALUES (%s, %s, %s, %s, %s, %s, %s)""",
            rows,
        )
    return len(rows)
