"""The shared webhook-inbox drain: claim with SKIP LOCKED, retry with backoff, dead after max tries —
the same for every inbox reader (Instantly replies, VAPI call outcomes)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import dagster as dg
import psycopg
import pytest
from psycopg.types.json import Jsonb

from equity_assets.db.resources import PostgresResource
from equity_assets.observe.inbox import drain, mark_processed, retries_due
from equity_assets_tests.conftest import TestDatabase


@pytest.fixture
def db(clean_db: TestDatabase) -> Iterator[psycopg.Connection]:
    with psycopg.connect(clean_db.admin_dsn, autocommit=True) as conn:
        yield conn


def add_event(conn: psycopg.Connection, provider: str, event_type: str, payload: dict | None = None) -> int:
    return conn.execute(
        "INSERT INTO webhook_events (provider, event_key, event_type, payload) VALUES (%s, %s, %s, %s) RETURNING id",
        (provider, uuid.uuid4().hex, event_type, Jsonb(payload or {})),
    ).fetchone()[0]


@dataclass(frozen=True)
class Done:
    outcome: str


def state(db: psycopg.Connection, event_id: int) -> tuple:
    return db.execute(
        """SELECT status, attempts, round(extract(epoch FROM next_attempt_at - now()) / 60)::int, outcome
           FROM webhook_events WHERE id = %s""", (event_id,)).fetchone()


def test_a_failing_event_backs_off_then_is_dead_lettered_and_the_others_go_on(db, postgres: PostgresResource):
    poison, fine = add_event(db, "vapi", "end-of-call-report"), add_event(db, "vapi", "end-of-call-report")
    failed: list[tuple[int, int]] = []

    def process(conn: psycopg.Connection, event_id: int) -> Done:
        mark_processed(conn, event_id, "done")
        if event_id == poison:
            raise RuntimeError("cannot apply")  # the mark above rolls back with the failed try
        return Done("done")

    first = drain(postgres.connection, [poison, fine], process, provider="vapi", stage="call_outcomes", max_tries=3,
                  run_id=None, on_failure=lambda event_id, tries, exc: failed.append((event_id, tries)))
    assert first.outcomes == {"retry": 1, "done": 1} and first.failures == 1 and failed == [(poison, 1)]
    assert state(db, poison) == ("pending", 1, 1, None)  # next try in 1 minute
    assert state(db, fine)[0::3] == ("processed", "done")
    drain(postgres.connection, [poison], process, provider="vapi", stage="call_outcomes", max_tries=3, run_id=None)
    assert state(db, poison) == ("pending", 2, 4, None)  # then 4 minutes
    third = drain(postgres.connection, [poison, fine], process, provider="vapi", stage="call_outcomes", max_tries=3,
                  run_id="r1")
    assert third.outcomes == {"dlq": 1, "skipped": 1}
    assert state(db, poison)[0::3] == ("failed", "dlq")
    letters = db.execute("SELECT stage, source_ref, reason, run_id FROM pipeline_dlq").fetchall()
    assert letters == [("call_outcomes", f"webhook_events:{poison}",
                        "poison event after 3 tries: RuntimeError: cannot apply", "r1")]


def test_claim_only_takes_events_of_its_provider(db, postgres: PostgresResource):
    other = add_event(db, "instantly", "reply_received")
    drained = drain(postgres.connection, [other], lambda conn, i: Done("done"), provider="vapi",
                    stage="call_outcomes", max_tries=3, run_id=None)
    assert drained.outcomes == {"skipped": 1}
    assert state(db, other)[:2] == ("pending", 0)


def _materialize_email_replies(postgres: PostgresResource, event_id: int) -> dg.ExecuteInProcessResult:
    from equity_assets.engage.assets import email_replies

    return dg.materialize([email_replies], resources={"postgres": postgres},
                          run_config={"ops": {"email_replies": {"config": {"event_ids": [event_id]}}}})


def _materialize_call_outcomes(postgres: PostgresResource, event_id: int) -> dg.ExecuteInProcessResult:
    from equity_assets.voice.assets import call_outcomes

    return dg.materialize([call_outcomes], resources={"postgres": postgres},
                          run_config={"ops": {"call_outcomes": {"config": {"event_ids": [event_id]}}}})


@pytest.mark.parametrize(("provider", "event_type", "run"), [
    ("instantly", "reply_received", _materialize_email_replies),
    ("vapi", "end-of-call-report", _materialize_call_outcomes),
])
def test_both_inbox_readers_skip_an_event_another_run_is_processing(db, postgres, provider, event_type, run):
    event = add_event(db, provider, event_type, {"event_type": event_type, "lead_email": "x@example.com"})
    with psycopg.connect(db.info.dsn) as holder:  # another run, mid-event: it holds the row
        holder.execute("SELECT 1 FROM webhook_events WHERE id = %s FOR UPDATE", (event,))
        # Without SKIP LOCKED the claim would wait for the holder; release it late so a wait shows as a claim.
        release = threading.Timer(8.0, holder.rollback)
        release.start()
        try:
            result = run(postgres, event)
        finally:
            release.cancel()
    assert result.success
    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    assert metadata["outcomes"].data == {"skipped": 1}
    assert state(db, event)[:2] == ("pending", 0)  # not counted as a try: the other run owns it


def test_retries_due_are_the_soonest_failed_events_up_to_the_cursor(db):
    ids = [add_event(db, "vapi", "end-of-call-report") for _ in range(4)]
    add_event(db, "instantly", "reply_received")
    for minutes, event in zip((-3, -1, -2, 5), ids, strict=True):  # the last is not due yet
        db.execute("UPDATE webhook_events SET attempts = 1, next_attempt_at = now() + make_interval(mins => %s) "
                   "WHERE id = %s", (minutes, event))
    assert retries_due(db, "vapi", up_to_id=ids[-1], limit=10) == [(ids[0], 1), (ids[2], 1), (ids[1], 1)]
    # ids after the cursor are new to the sensor, not retries; the limit keeps the soonest
    assert retries_due(db, "vapi", up_to_id=ids[1], limit=10) == [(ids[0], 1), (ids[1], 1)]
    assert retries_due(db, "vapi", up_to_id=ids[-1], limit=1) == [(ids[0], 1)]
