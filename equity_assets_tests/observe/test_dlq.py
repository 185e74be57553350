"""Dead-letter operations on the real database: the redrive's backoff and dead state, and `equity dlq`."""

import json
from datetime import timedelta

import pytest

from equity_assets.cli import main
from equity_assets.observe.dlq import redrive_stage
from equity_assets.observe.events import DeadLetter, Stage, send_to_dlq
from equity_assets.observe.redrive import dlq_redrive_job


def _failed_webhook(conn, key: str) -> int:
    return conn.execute(
        """INSERT INTO webhook_events (provider, event_key, event_type, payload, status, outcome, processed_at)
           VALUES ('instantly', %s, 'reply_received', '{}', 'failed', 'dlq', now()) RETURNING id""",
        (key,),
    ).fetchone()[0]


def _letters(conn) -> dict[str, tuple]:
    return {ref: (status, attempts, due_later, error is not None) for ref, status, attempts, due_later, error in
            conn.execute("""SELECT source_ref, status, attempts, next_attempt_at > now(), last_error
                            FROM pipeline_dlq""")}


def test_redrive_requeues_parked_webhooks_backs_off_and_gives_up(postgres):
    with postgres.connection() as conn:
        event = _failed_webhook(conn, "evt-1")
        send_to_dlq(conn, Stage.EMAIL_REPLIES, [
            DeadLetter("poison", f"webhook_events:{event}"),
            DeadLetter("poison", "webhook_events:999999"),  # its event is gone: every try fails
            DeadLetter("bad row", "upload-1", 3, "zip"),  # no redriver knows uploads: left for an operator
        ])
        send_to_dlq(conn, Stage.CONSENT, [DeadLetter("other stage", "webhook_events:999998")])
    with postgres.connection() as conn:
        first = redrive_stage(conn, "email_replies", max_tries=2, base_delay=timedelta(minutes=5))
        after_first = _letters(conn)
        webhook = conn.execute("SELECT status, outcome, processed_at FROM webhook_events WHERE id = %s",
                               (event,)).fetchone()
        # not due yet: nothing happens on an immediate second run
        early = redrive_stage(conn, "email_replies", max_tries=2, base_delay=timedelta(minutes=5))
        conn.execute("UPDATE pipeline_dlq SET next_attempt_at = now() - interval '1 second' WHERE status = 'pending'")
        second = redrive_stage(conn, "email_replies", max_tries=2, base_delay=timedelta(minutes=5))
        after_second = _letters(conn)
    assert first.as_dict() == {"redriven": 1, "retry_later": 1, "dead": 0, "no_redriver": 1}
    assert after_first[f"webhook_events:{event}"] == ("redriven", 1, None, False)
    assert after_first["webhook_events:999999"] == ("pending", 1, True, True)
    assert after_first["upload-1"] == ("pending", 0, None, False)
    assert after_first["webhook_events:999998"] == ("pending", 0, None, False)  # another stage untouched
    assert webhook == ("pending", None, None)
    assert early.as_dict() == {"redriven": 0, "retry_later": 0, "dead": 0, "no_redriver": 1}
    assert second.as_dict() == {"redriven": 0, "retry_later": 0, "dead": 1, "no_redriver": 1}
    assert after_second["webhook_events:999999"][:2] == ("dead", 2)


def test_backoff_doubles_with_each_try(postgres):
    with postgres.connection() as conn:
        send_to_dlq(conn, Stage.EMAIL_REPLIES, [DeadLetter("poison", "webhook_events:424242")])
        delays = []
        for _ in range(3):
            conn.execute("UPDATE pipeline_dlq SET next_attempt_at = now() - interval '1 second'")
            redrive_stage(conn, "email_replies", max_tries=9, base_delay=timedelta(minutes=5))
            delays.append(conn.execute("SELECT round(extract(epoch FROM next_attempt_at - now()) / 60)"
                                       " FROM pipeline_dlq").fetchone()[0])
    assert [int(d) for d in delays] == [5, 10, 20]


def test_redrive_job_runs_every_stage(postgres):
    with postgres.connection() as conn:
        ids = [_failed_webhook(conn, f"evt-{n}") for n in range(2)]
        send_to_dlq(conn, Stage.EMAIL_REPLIES, [DeadLetter("poison", f"webhook_events:{ids[0]}")])
        send_to_dlq(conn, Stage.CONSENT, [DeadLetter("poison", f"webhook_events:{ids[1]}")])
    result = dlq_redrive_job.execute_in_process(resources={"postgres": postgres})
    assert result.success
    with postgres.connection() as conn:
        statuses = conn.execute("SELECT DISTINCT status FROM webhook_events").fetchall()
        letters = conn.execute("SELECT DISTINCT status FROM pipeline_dlq").fetchall()
    assert statuses == [("pending",)] and letters == [("redriven",)]


def _equity(capsys, *argv) -> object:
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


@pytest.fixture
def cli_db(clean_db, monkeypatch):
    monkeypatch.setenv("EQUITY_DATABASE_URL", clean_db.app_dsn)
    return clean_db


def test_equity_dlq_lists_filters_shows_retries_and_drops(postgres, cli_db, capsys):
    with postgres.connection() as conn:
        send_to_dlq(conn, Stage.STAGED_LEADS, [DeadLetter("bad zip", "upload-a", 7, "zip", {"zip": "1234"}),
                                               DeadLetter("bad date", "upload-b", 2, "sale_date")])
        send_to_dlq(conn, Stage.EMAIL_REPLIES, [DeadLetter("poison", "webhook_events:1")])
        conn.execute("UPDATE pipeline_dlq SET created_at = now() - interval '3 days' WHERE source_ref = 'upload-b'")
        conn.execute("UPDATE pipeline_dlq SET status = 'dead', attempts = 5 WHERE stage = 'email_replies'")
    staged = _equity(capsys, "dlq", "list", "--stage", "staged_leads", "--json")
    assert sorted(r["source_ref"] for r in staged) == ["upload-a", "upload-b"]
    assert [r["source_ref"] for r in _equity(capsys, "dlq", "list", "--upload", "upload-a", "--json")] == ["upload-a"]
    assert [r["source_ref"] for r in _equity(capsys, "dlq", "list", "--older-than", "2d", "--json")] == ["upload-b"]
    assert len(_equity(capsys, "dlq", "list", "--newer-than", "1h", "--json")) == 2
    dead = _equity(capsys, "dlq", "list", "--status", "dead", "--json")
    assert [(r["stage"], r["attempts"]) for r in dead] == [("email_replies", 5)]
    upload_a = next(r["id"] for r in staged if r["source_ref"] == "upload-a")
    shown = _equity(capsys, "dlq", "show", str(upload_a), "--json")
    assert (shown["column_name"], shown["payload"]) == ("zip", {"zip": "1234"})
    assert _equity(capsys, "dlq", "retry", str(dead[0]["id"]), "--json") == {"retried": 1}
    again = _equity(capsys, "dlq", "show", str(dead[0]["id"]), "--json")
    assert (again["status"], again["attempts"]) == ("pending", 0)
    assert _equity(capsys, "dlq", "drop", str(dead[0]["id"]), "--json") == {"dropped": 1}
    assert _equity(capsys, "dlq", "list", "--status", "discarded", "--json")[0]["id"] == dead[0]["id"]
    assert main(["dlq", "show", "987654"]) == 1
    assert "no dead letter 987654" in capsys.readouterr().err
    assert main(["dlq", "list", "--stage", "staged_leads"]) == 0
    assert "upload-a" in capsys.readouterr().out
