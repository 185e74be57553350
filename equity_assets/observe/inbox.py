"""Draining the webhook inbox: the claim / retry / dead-letter loop every inbox reader shares.

The gateway stores a provider's webhook in ``webhook_events`` before it answers; a domain asset
then drains that provider's events with :func:`drain`, giving it only what one event *means*
(a ``process`` function run in the transaction that marks the event processed).

The loop, per event:

* **claim** in a transaction of its own: the try counter goes up and the next try is pushed back
  (1, 4, 16 … minutes), so a process killed mid-event has counted the try. The row is taken with
  ``SKIP LOCKED``: an event another run is processing right now is skipped, not waited for;
* more tries than ``max_tries`` already (earlier tries died with their process): dead-lettered;
* ``process`` in a second transaction; if it raises, that transaction rolls back completely, the
  error (type and message only) is noted and the event retried later — or, at its last try,
  parked: status ``failed`` and a ``pipeline_dlq`` row saying why. One bad event never stops the others.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

import psycopg

from .events import DeadLetter, send_to_dlq

DEFAULT_MAX_TRIES = 3

_CLAIM_SQL = """
UPDATE webhook_events w SET attempts = w.attempts + 1,
       next_attempt_at = now() + make_interval(mins => power(4, w.attempts)::int)
FROM (SELECT id FROM webhook_events WHERE id = %s AND provider = %s AND status = 'pending'
      FOR UPDATE SKIP LOCKED) due
WHERE w.id = due.id
RETURNING w.attempts
"""
_DUE_SQL = """
SELECT id FROM webhook_events
WHERE provider = %s AND status = 'pending' AND (next_attempt_at IS NULL OR next_attempt_at <= now())
ORDER BY id LIMIT %s
"""
_RETRIES_DUE_SQL = """
SELECT id, attempts FROM webhook_events
WHERE provider = %s AND status = 'pending' AND attempts > 0 AND next_attempt_at <= now() AND id <= %s
ORDER BY next_attempt_at, id LIMIT %s
"""


class HasOutcome(Protocol):
    @property
    def outcome(self) -> str: ...


Connect = Callable[[], AbstractContextManager[psycopg.Connection]]


@dataclass
class Drained:
    """What one drain did: counts per outcome (plus ``skipped``, ``retry``, ``dlq``), the failed
    tries, and the results ``process`` returned."""

    outcomes: Counter[str] = field(default_factory=Counter)
    failures: int = 0
    results: list[Any] = field(default_factory=list)


def claim(conn: psycopg.Connection, provider: str, event_id: int) -> int | None:
    """Count a try of a pending event and set its retry time; the try number, or None when the event
    is no longer pending (or another run holds it)."""
    row = conn.execute(_CLAIM_SQL, (event_id, provider)).fetchone()
    return row[0] if row else None


def park(conn: psycopg.Connection, stage: str, event_id: int, reason: str, *, run_id: str | None,
         payload: dict[str, Any] | None = None) -> None:
    """Give up on an event: status ``failed`` and a dead letter for ``stage`` saying why."""
    conn.execute(
        """UPDATE webhook_events SET status = 'failed', outcome = 'dlq', last_error = %s, processed_at = now()
           WHERE id = %s""",
        (reason, event_id),
    )
    send_to_dlq(conn, stage, [DeadLetter(reason=reason, source_ref=f"webhook_events:{event_id}", payload=payload)],
                run_id=run_id)


def record_failure(conn: psycopg.Connection, stage: str, event_id: int, tries: int, error: BaseException, *,
                   max_tries: int, run_id: str | None) -> bool:
    """Note a failed try (error type and message only); True when the event went to the DLQ."""
    reason = f"{type(error).__name__}: {str(error)[:300]}"
    if tries >= max_tries:
        park(conn, stage, event_id, f"poison event after {tries} tries: {reason}", run_id=run_id)
        return True
    conn.execute("UPDATE webhook_events SET last_error = %s WHERE id = %s", (reason, event_id))
    return False


def mark_processed(conn: psycopg.Connection, event_id: int, outcome: str) -> None:
    """Done with an event: status ``processed`` with its outcome, any earlier error cleared."""
    conn.execute(
        "UPDATE webhook_events SET status = 'processed', outcome = %s, processed_at = now(), last_error = NULL "
        "WHERE id = %s",
        (outcome, event_id),
    )


def due_event_ids(conn: psycopg.Connection, provider: str, limit: int) -> list[int]:
    """Pending events of ``provider`` whose (re)try time has come, oldest first."""
    return [r[0] for r in conn.execute(_DUE_SQL, (provider, limit))]


def retries_due(conn: psycopg.Connection, provider: str, *, up_to_id: int, limit: int) -> list[tuple[int, int]]:
    """(id, tries so far) of failed events whose next try is due, soonest first. Only ids up to
    ``up_to_id`` (a sensor's cursor): later ones are still new to the sensor, not retries."""
    return [(r[0], r[1]) for r in conn.execute(_RETRIES_DUE_SQL, (provider, up_to_id, limit))]


def drain(connect: Connect, event_ids: Sequence[int], process: Callable[[psycopg.Connection, int], HasOutcome], *,
          provider: str, stage: str, max_tries: int, run_id: str | None,
          on_failure: Callable[[int, int, BaseException], None] | None = None) -> Drained:
    """Claim and process each event once, as the module docstring describes."""
    drained = Drained()
    for event_id in event_ids:
        with connect() as conn:
            tries = claim(conn, provider, event_id)
        if tries is None:
            drained.outcomes["skipped"] += 1
            continue
        if tries > max_tries:  # earlier tries died with their process: they never got to record_failure
            with connect() as conn:
                park(conn, stage, event_id, f"poison event: {tries - 1} tries did not finish", run_id=run_id)
            drained.outcomes["dlq"] += 1
            continue
        try:
            with connect() as conn:
                result = process(conn, event_id)
        except Exception as exc:  # one bad event must not stop the others
            drained.failures += 1
            with connect() as conn:
                parked = record_failure(conn, stage, event_id, tries, exc, max_tries=max_tries, run_id=run_id)
            drained.outcomes["dlq" if parked else "retry"] += 1
            if on_failure is not None:
                on_failure(event_id, tries, exc)
            continue
        drained.outcomes[result.outcome] += 1
        drained.results.append(result)
    return drained
