"""Operating the dead-letter queue: list, show, retry and drop letters, and redrive them.

A letter's ``source_ref`` says what failed (``webhook_events:<id>``, an upload id, ``lead:<id>`` …).
The redrive hands a due ``pending`` letter back to whatever can process its source again (a
:data:`Redriver` chosen by the source's kind). A redriver that fails counts a try and waits
``base_delay × 2^(tries-1)``; after ``max_tries`` the letter is ``dead`` and only an operator's
``retry`` brings it back. Letters whose source no redriver knows stay ``pending`` for an operator.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row

#: Re-queue one letter's source; True when it was handed back, False (or an exception) when not.
Redriver = Callable[[psycopg.Connection, str], bool]

STATUSES = ("pending", "redriven", "resolved", "discarded", "dead")
DEFAULT_MAX_TRIES = 5
DEFAULT_BASE_DELAY = timedelta(minutes=5)

_COLUMNS = """id, stage, source_ref, row_number, column_name, reason, attempts, status, next_attempt_at,
              last_error, run_id, created_at, updated_at"""


def _jsonable(row: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items()}


def list_letters(
    conn: psycopg.Connection,
    *,
    stage: str | None = None,
    upload: str | None = None,
    status: str | None = None,
    older_than: timedelta | None = None,
    newer_than: timedelta | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Letters, newest first, filtered by stage, upload (its source), status and age."""
    rows = conn.cursor(row_factory=dict_row).execute(
        f"""SELECT {_COLUMNS} FROM pipeline_dlq
            WHERE (%(stage)s::text IS NULL OR stage = %(stage)s)
              AND (%(upload)s::text IS NULL OR source_ref = %(upload)s)
              AND (%(status)s::text IS NULL OR status = %(status)s)
              AND (%(older)s::interval IS NULL OR created_at <= now() - %(older)s::interval)
              AND (%(newer)s::interval IS NULL OR created_at > now() - %(newer)s::interval)
            ORDER BY created_at DESC, id DESC LIMIT %(limit)s""",
        {"stage": stage, "upload": upload, "status": status, "older": older_than, "newer": newer_than,
         "limit": limit},
    ).fetchall()
    return [_jsonable(r) for r in rows]


def show_letter(conn: psycopg.Connection, letter_id: int) -> dict[str, Any] | None:
    """One letter with its payload."""
    row = conn.cursor(row_factory=dict_row).execute(
        f"SELECT {_COLUMNS}, payload FROM pipeline_dlq WHERE id = %s", (letter_id,)).fetchone()
    return _jsonable(row) if row else None


def retry_letters(conn: psycopg.Connection, letter_ids: list[int]) -> int:
    """An operator's retry: back to ``pending``, due now, with a fresh count of tries."""
    return conn.execute(
        """UPDATE pipeline_dlq SET status = 'pending', attempts = 0, next_attempt_at = now(), last_error = NULL
           WHERE id = ANY(%s) AND status <> 'resolved'""",
        (letter_ids,),
    ).rowcount


def drop_letters(conn: psycopg.Connection, letter_ids: list[int]) -> int:
    """An operator's drop: ``discarded`` (kept for the record, never retried)."""
    return conn.execute(
        "UPDATE pipeline_dlq SET status = 'discarded' WHERE id = ANY(%s) AND status IN ('pending', 'dead')",
        (letter_ids,),
    ).rowcount


def requeue_webhook_event(conn: psycopg.Connection, source_ref: str) -> bool:
    """A parked webhook back to its inbox: ``pending`` and due now, so its sensor processes it again."""
    event_id = int(source_ref.split(":", 1)[1])
    return conn.execute(
        """UPDATE webhook_events SET status = 'pending', attempts = 0, next_attempt_at = now(), outcome = NULL,
                  processed_at = NULL
           WHERE id = %s AND status = 'failed'""",
        (event_id,),
    ).rowcount == 1


#: Redrivers by the kind of source (the part of ``source_ref`` before ``:``).
REDRIVERS: dict[str, Redriver] = {"webhook_events": requeue_webhook_event}


@dataclass
class RedriveSummary:
    redriven: int = 0
    retry_later: int = 0
    dead: int = 0
    no_redriver: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(vars(self))


def _redriver_for(source_ref: str | None, redrivers: Mapping[str, Redriver]) -> Redriver | None:
    if not source_ref or ":" not in source_ref:
        return None
    return redrivers.get(source_ref.split(":", 1)[0])


def redrive_stage(
    conn: psycopg.Connection,
    stage: str,
    *,
    redrivers: Mapping[str, Redriver] = REDRIVERS,
    max_tries: int = DEFAULT_MAX_TRIES,
    base_delay: timedelta = DEFAULT_BASE_DELAY,
    limit: int = 1000,
) -> RedriveSummary:
    """Retry `stage`'s due pending letters, one savepoint each; locked rows are another run's."""
    summary = RedriveSummary()
    due = conn.execute(
        """SELECT id, source_ref, attempts FROM pipeline_dlq
           WHERE stage = %s AND status = 'pending' AND coalesce(next_attempt_at, created_at) <= now()
           ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED""",
        (stage, limit),
    ).fetchall()
    for letter_id, source_ref, attempts in due:
        redriver = _redriver_for(source_ref, redrivers)
        if redriver is None:
            summary.no_redriver += 1
            continue
        tries = attempts + 1
        error: str | None = None
        try:
            with conn.transaction():
                if not redriver(conn, source_ref):
                    error = "the source could not be handed back"
        except Exception as exc:  # a failed try is recorded, not raised: the other letters go on
            error = f"{type(exc).__name__}: {str(exc)[:300]}"
        if error is None:
            conn.execute("UPDATE pipeline_dlq SET status = 'redriven', attempts = %s, last_error = NULL WHERE id = %s",
                         (tries, letter_id))
            summary.redriven += 1
        elif tries >= max_tries:
            conn.execute("UPDATE pipeline_dlq SET status = 'dead', attempts = %s, last_error = %s WHERE id = %s",
                         (tries, error, letter_id))
            summary.dead += 1
        else:
            conn.execute(
                """UPDATE pipeline_dlq SET attempts = %s, last_error = %s,
                          next_attempt_at = now() + %s * power(2, %s - 1)
                   WHERE id = %s""",
                (tries, error, base_delay, tries, letter_id),
            )
            summary.retry_later += 1
    return summary


def pending_stages(conn: psycopg.Connection) -> list[str]:
    return [r[0] for r in conn.execute(
        "SELECT DISTINCT stage FROM pipeline_dlq WHERE status = 'pending' ORDER BY stage").fetchall()]
