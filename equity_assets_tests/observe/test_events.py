"""The one event and dead-letter writer: bulk variants, idempotency and the typed names."""

import uuid

from equity_assets.observe.events import (
    FUNNEL,
    DeadLetter,
    Event,
    Stage,
    copy_dead_letters,
    record_lead_events,
    upsert_dead_letters,
)


def test_lead_events_are_written_once_per_lead(postgres):
    leads = [uuid.uuid4(), uuid.uuid4()]
    with postgres.connection() as conn:
        written = record_lead_events(conn, Event.EMAIL_SENT, stage=Stage.INSTANTLY_CAMPAIGN_LEADS, lead_ids=leads,
                                     payload={"campaign_id": "c1"}, partition_key="2026-01-05")
        again = record_lead_events(conn, Event.EMAIL_SENT, stage=Stage.INSTANTLY_CAMPAIGN_LEADS, lead_ids=leads)
        rows = conn.execute(
            "SELECT lead_id, stage, payload->>'campaign_id', idempotency_key FROM pipeline_events"
        ).fetchall()
    assert (written, again) == (2, 0)
    assert sorted(rows) == sorted([(leads[0], "instantly_campaign_leads", "c1", f"email_sent:{leads[0]}"),
                                   (leads[1], "instantly_campaign_leads", "c1", f"email_sent:{leads[1]}")])


def test_upserted_dead_letters_count_attempts_instead_of_adding_rows(postgres):
    with postgres.connection() as conn:
        upsert_dead_letters(conn, Stage.VERIFIED_LEADS, [DeadLetter("timeout", "lead:1")], run_id="r1")
        upsert_dead_letters(conn, Stage.VERIFIED_LEADS, [DeadLetter("http 503", "lead:1"), DeadLetter("x", "lead:2")],
                            run_id="r2")
        rows = conn.execute("SELECT source_ref, reason, attempts, run_id FROM pipeline_dlq ORDER BY source_ref").fetchall()
    assert rows == [("lead:1", "http 503", 2, "r2"), ("lead:2", "x", 1, "r2")]


def test_copied_dead_letters_keep_row_and_column(postgres):
    letters = [DeadLetter("bad zip", "upload-1", 7, "zip", {"zip": "1234"}), DeadLetter("empty row", "upload-1", 9)]
    with postgres.connection() as conn:
        assert copy_dead_letters(conn, Stage.STAGED_LEADS, letters, run_id="r") == 2
        rows = conn.execute("SELECT stage, row_number, column_name, payload FROM pipeline_dlq ORDER BY row_number").fetchall()
    assert rows == [("staged_leads", 7, "zip", {"zip": "1234"}), ("staged_leads", 9, None, None)]


def test_funnel_names_are_event_types():
    assert all(isinstance(stage, Event) for stage in FUNNEL)
    assert FUNNEL[0] is Event.UPLOAD_RECEIVED and len(set(FUNNEL)) == len(FUNNEL)
