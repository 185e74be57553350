"""`email_replies` on a real database: effects in one transaction, DLQ for unknown leads and poison."""

from __future__ import annotations

import dagster as dg
import psycopg
import pytest

from equity_assets.db.resources import PostgresResource
from equity_assets.engage import inbox
from equity_assets.engage.definitions import defs as engage_defs

from .conftest import add_event, add_lead


def materialize(postgres: PostgresResource, **config) -> dg.ExecuteInProcessResult:
    from equity_assets.engage.assets import email_replies
    from equity_assets.engage.checks import engage_checks

    return dg.materialize([email_replies, *engage_checks], resources={"postgres": postgres},
                          run_config={"ops": {"email_replies": {"config": config}}} if config else None)


def lead_row(db, lead):
    return db.execute("SELECT campaign_status::text, consent, last_reply_intent, last_reply_at IS NOT NULL "
                      "FROM leads WHERE id = %s", (lead,)).fetchone()


def suppressed(db, channel: str) -> set[str]:
    return {r[0] for r in db.execute("SELECT value FROM suppression_list WHERE channel = %s", (channel,))}


def test_interested_reply_marks_replied_and_records_the_event(db, postgres):
    lead, broker = add_lead(db, "ann@example.com")
    event = add_event(db, "reply_received", "Ann@Example.com", "Yes please call me after 3pm")
    result = materialize(postgres)
    assert result.success
    assert lead_row(db, lead) == ("replied", False, "interested", True)
    reply = db.execute("SELECT lead_id, broker_id, intent, revocation FROM email_replies WHERE webhook_event_id = %s",
                       (event,)).fetchone()
    assert reply == (lead, broker, "interested", False)
    assert db.execute("SELECT status, outcome FROM webhook_events WHERE id = %s", (event,)).fetchone() == \
        ("processed", "interested")
    assert db.execute("SELECT count(*) FROM pipeline_events WHERE event_type = 'email_replied'").fetchone()[0] == 1
    # A re-run finds nothing pending and changes nothing.
    assert materialize(postgres).success
    assert db.execute("SELECT count(*) FROM email_replies").fetchone()[0] == 1


@pytest.mark.parametrize("event_type, text", [
    ("reply_received", "Please remove me from your list.\n\n--\nAnn"),
    ("reply_received", "This is a scam, I'll report you"),
    ("lead_unsubscribed", None),
])
def test_revocations_stop_every_channel_and_are_audited(db, postgres, event_type, text):
    lead, _ = add_lead(db, "bob@example.com", phone="+15125550199", consent=True)
    twin, _ = add_lead(db, "bob@example.com", phone="+15125550200")  # same address, another lead
    add_event(db, event_type, "bob@example.com", text)
    result = materialize(postgres)
    assert result.success
    for one in (lead, twin):
        status, consent, _, _ = lead_row(db, one)
        assert (status, consent) == ("do_not_contact", False)
    assert "bob@example.com" in suppressed(db, "email")
    assert {"+15125550199", "+15125550200"} <= suppressed(db, "phone")
    audit = db.execute("SELECT lead_id, decision, method FROM lead_consent_audit ORDER BY id").fetchall()
    assert {(a[0], a[1], a[2]) for a in audit} == {(lead, "revoked", "email_reply"), (twin, "revoked", "email_reply")}
    check = [c for c in result.get_asset_check_evaluations() if c.check_name == "revocations_applied"][0]
    assert check.passed


def test_bounce_suppresses_email_only_and_ooo_changes_nothing(db, postgres):
    bounced, _ = add_lead(db, "gone@example.com")
    away, _ = add_lead(db, "away@example.com")
    add_event(db, "email_bounced", "gone@example.com")
    add_event(db, "reply_received", "away@example.com", "Automatic reply: I am out of the office until Monday.")
    assert materialize(postgres).success
    assert suppressed(db, "email") == {"gone@example.com"}
    assert suppressed(db, "phone") == set()
    assert lead_row(db, bounced)[0] == "active"
    assert db.execute("SELECT email_verified FROM leads WHERE id = %s", (bounced,)).fetchone()[0] is False
    assert db.execute("SELECT email_verified FROM leads WHERE id = %s", (away,)).fetchone()[0] is True
    assert lead_row(db, away) == ("active", False, None, False)
    intents = {r[0] for r in db.execute("SELECT intent FROM email_replies")}
    assert intents == {"bounce", "out_of_office"}


def test_unknown_lead_goes_to_the_dlq_and_sent_events_are_ignored(db, postgres):
    unknown = add_event(db, "reply_received", "nobody@example.com", "yes")
    sent = add_event(db, "email_sent", "nobody@example.com")
    assert materialize(postgres).success
    assert db.execute("SELECT status FROM webhook_events WHERE id = %s", (unknown,)).fetchone()[0] == "failed"
    assert db.execute("SELECT status, outcome FROM webhook_events WHERE id = %s", (sent,)).fetchone() == \
        ("processed", "ignored")
    letters = db.execute("SELECT stage, source_ref, reason FROM pipeline_dlq").fetchall()
    assert letters == [("email_replies", f"webhook_events:{unknown}", "unknown lead e-mail")]


def test_a_poison_event_is_retried_then_parked_without_blocking_the_others(db, postgres, monkeypatch):
    add_lead(db, "ok@example.com")
    add_lead(db, "poison@example.com")
    poison = add_event(db, "reply_received", "poison@example.com", "boom")
    fine = add_event(db, "reply_received", "ok@example.com", "sounds good")
    real = inbox.apply_effects

    def explode(conn, event_id, *args, **kwargs):
        if event_id == poison:
            raise ValueError("cannot apply")
        return real(conn, event_id, *args, **kwargs)

    monkeypatch.setattr(inbox, "apply_effects", explode)
    for attempt in range(1, 4):
        result = materialize(postgres, event_ids=[poison, fine], max_tries=3)
        assert result.success
        status, attempts = db.execute("SELECT status, attempts FROM webhook_events WHERE id = %s", (poison,)).fetchone()
        assert attempts == attempt
        assert status == ("failed" if attempt == 3 else "pending")
    assert db.execute("SELECT status FROM webhook_events WHERE id = %s", (fine,)).fetchone()[0] == "processed"
    # The failed tries rolled back completely: no reply row, no half-applied effect for the poison event.
    assert db.execute("SELECT count(*) FROM email_replies WHERE webhook_event_id = %s", (poison,)).fetchone()[0] == 0
    reason = db.execute("SELECT reason FROM pipeline_dlq WHERE source_ref = %s", (f"webhook_events:{poison}",)).fetchone()[0]
    assert reason.startswith("poison event after 3 tries: ValueError")


def test_an_event_whose_tries_all_died_with_their_process_is_parked(db, postgres):
    add_lead(db, "crash@example.com")
    event = add_event(db, "reply_received", "crash@example.com", "yes")
    db.execute("UPDATE webhook_events SET attempts = 3 WHERE id = %s", (event,))  # three claims, no outcome
    assert materialize(postgres, event_ids=[event], max_tries=3).success
    assert db.execute("SELECT status FROM webhook_events WHERE id = %s", (event,)).fetchone()[0] == "failed"


def wired(postgres) -> dg.Definitions:
    return dg.Definitions.merge(engage_defs, dg.Definitions(resources={"postgres": postgres}))


def run_sensor(postgres, instance, cursor=None):
    sensor = wired(postgres).resolve_sensor_def("instantly_webhook_sensor")
    with dg.build_sensor_context(instance=instance, cursor=cursor, resources={"postgres": postgres}) as ctx:
        return sensor(ctx)


def test_sensor_requests_runs_keyed_by_event_id_and_moves_its_cursor(db, postgres, monkeypatch):
    from equity_assets.engage import sensors

    monkeypatch.setattr(sensors, "EVENTS_PER_RUN", 2)
    add_lead(db, "s@example.com")
    first = add_event(db, "reply_received", "s@example.com", "yes")
    add_event(db, "email_opened", "s@example.com")  # not worth a run
    second = add_event(db, "lead_interested", "s@example.com")
    third = add_event(db, "reply_received", "s@example.com", "no thanks")
    with dg.instance_for_test() as instance:
        result = run_sensor(postgres, instance)
        keys = [r.run_key for r in result.run_requests]
        assert keys == [f"webhook_event:{second}", f"webhook_event:{third}"]
        configs = [r.run_config["ops"]["email_replies"]["config"]["event_ids"] for r in result.run_requests]
        assert configs == [[first, second], [third]]
        assert result.cursor == str(third)
        again = run_sensor(postgres, instance, cursor=result.cursor)
        assert not again.run_requests
        # A failed try whose retry time has come is requested again, keyed by its try number.
        db.execute("UPDATE webhook_events SET attempts = 1, next_attempt_at = now() - interval '1 s' WHERE id = %s",
                   (first,))
        retry = run_sensor(postgres, instance, cursor=result.cursor)
        assert [r.run_key for r in retry.run_requests] == [f"webhook_event:{first}:try2"]
        # An event that committed below the cursor (a slow transaction) is picked up once it is late.
        straggler = add_event(db, "reply_received", "s@example.com", "ok")
        db.execute("UPDATE webhook_events SET received_at = now() - interval '5 minutes' WHERE id = %s", (straggler,))
        late = run_sensor(postgres, instance, cursor=str(straggler + 10))
        assert f"webhook_event:{straggler}:late" in [r.run_key for r in late.run_requests]


def test_sensor_runs_apply_the_events(db, postgres):
    lead, _ = add_lead(db, "run@example.com")
    add_event(db, "reply_received", "run@example.com", "STOP")
    job = wired(postgres).resolve_job_def("email_replies_job")
    with dg.instance_for_test() as instance:
        for request in run_sensor(postgres, instance).run_requests:
            outcome = job.execute_in_process(run_config=request.run_config, instance=instance, tags=request.tags)
            assert outcome.success
    assert lead_row(db, lead)[0:2] == ("do_not_contact", False)


def test_effects_are_one_transaction(db, postgres):
    """A failure inside the effects leaves nothing behind: no reply row, lead unchanged, event pending."""
    lead, _ = add_lead(db, "tx@example.com")
    event = add_event(db, "reply_received", "tx@example.com", "stop")
    with pytest.raises(psycopg.errors.RaiseException), postgres.connection() as conn:
        inbox.process_event(conn, event)
        conn.execute("DO $$ BEGIN RAISE EXCEPTION 'crash after effects'; END $$")
    assert lead_row(db, lead)[0:2] == ("active", False)
    assert db.execute("SELECT count(*) FROM email_replies").fetchone()[0] == 0
    assert db.execute("SELECT status FROM webhook_events WHERE id = %s", (event,)).fetchone()[0] == "pending"
