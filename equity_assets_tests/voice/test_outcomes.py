"""call_outcomes: the outcome mapping, each outcome's effects, duplicates, out-of-order and unknown calls."""

from __future__ import annotations

import psycopg
import pytest

from equity_assets.observe.inbox import claim
from equity_assets.voice.inbox import process_event
from equity_assets.voice.outcomes import OutcomeSettings, map_outcome

from .conftest import add_broker, add_call, add_consenting_lead, add_inbox, report_message, status_message

SETTINGS = OutcomeSettings()


@pytest.mark.parametrize(("structured", "ended_reason", "transcript", "expected"), [
    ("booked", "assistant-ended-call", "", "booked"),
    ("appointment_set", "customer-ended-call", "", "booked"),
    ("callback", "customer-ended-call", "", "callback"),
    ("not_interested", "customer-ended-call", "", "not_interested"),
    ("Not Interested", "customer-ended-call", "", "not_interested"),
    (None, "customer-did-not-answer", "", "no_answer"),
    (None, "customer-busy", "", "busy"),
    (None, "voicemail", "", "voicemail"),
    (None, "silence-timed-out", "", "no_answer"),
    (None, "customer-ended-call", "AI: hello\nUser: hi", "callback"),
    (None, "assistant-forwarded-call", "", "callback"),
    (None, "manually-canceled", "", "failed"),
    (None, "call.start.error-get-transport", "", "failed"),
    (None, "pipeline-error-openai-llm-failed", "", "failed"),
    (None, None, "", "failed"),
    ("something-new", "customer-busy", "", "busy"),
    # an opt-out said by the person wins over anything the assistant concluded
    ("booked", "customer-ended-call", "AI: Shall I book?\nUser: No. Stop calling me.", "opted_out"),
    ("not_interested", "customer-ended-call", "User: please take me off your list", "opted_out"),
    (None, "customer-ended-call", "User: Do not call this number again", "opted_out"),
    # the assistant saying the words is not the person opting out
    ("callback", "customer-ended-call", "AI: You can opt out at any time.\nUser: call me tomorrow", "callback"),
])
def test_outcome_mapping(structured, ended_reason, transcript, expected) -> None:
    assert map_outcome(structured, ended_reason, transcript) == expected


def process(db: psycopg.Connection, event_id: int) -> str:
    assert claim(db, "vapi", event_id) == 1
    with db.transaction():
        return process_event(db, event_id, settings=SETTINGS).outcome


def lead_state(db: psycopg.Connection, lead_id: str) -> tuple:
    return db.execute("SELECT campaign_status::text, consent, next_call_at IS NOT NULL FROM leads WHERE id = %s",
                      (lead_id,)).fetchone()


def test_booked_converts_bills_locks_and_notifies(db: psycopg.Connection) -> None:
    broker = add_broker(db, notify_url="http://127.0.0.1:9/hook")
    lead = add_consenting_lead(db, broker)
    call_id, vapi_id = add_call(db, lead)
    assert process(db, add_inbox(db, report_message(vapi_id, appointmentAt="2026-07-03T15:00:00Z"))) == "booked"
    assert lead_state(db, lead.id)[0] == "converted"
    assert db.execute("SELECT status FROM lead_number_assignments WHERE lead_id = %s", (lead.id,)).fetchone()[0] \
        == "booked_locked"
    assert db.execute("SELECT event_type, amount::float, call_id::text FROM billing_events WHERE lead_id = %s",
                      (lead.id,)).fetchall() == [("appointment_set", 150.0, call_id)]
    note = db.execute("SELECT kind, status, payload->>'appointment_at' FROM broker_notifications").fetchall()
    assert note == [("appointment_booked", "pending", "2026-07-03T15:00:00Z")]
    assert db.execute("SELECT status, outcome, ended_reason, cost::float FROM calls WHERE id = %s",
                      (call_id,)).fetchone() == ("ended", "booked", "assistant-ended-call", 0.31)
    assert db.execute("SELECT count(*) FROM pipeline_events WHERE event_type = 'appointment_booked'").fetchone()[0] == 1


def test_a_second_report_for_the_same_call_changes_nothing(db: psycopg.Connection) -> None:
    lead = add_consenting_lead(db, add_broker(db))
    call_id, vapi_id = add_call(db, lead)
    assert process(db, add_inbox(db, report_message(vapi_id, timestamp=1))) == "booked"
    # replayed with another timestamp (so the inbox took it) and a different verdict
    again = add_inbox(db, report_message(vapi_id, outcome="not_interested", timestamp=2))
    assert process(db, again) == "duplicate"
    assert lead_state(db, lead.id)[0] == "converted"
    assert db.execute("SELECT count(*) FROM billing_events").fetchone()[0] == 1
    assert db.execute("SELECT outcome FROM calls WHERE id = %s", (call_id,)).fetchone()[0] == "booked"
    assert db.execute("SELECT count(*) FROM pipeline_events WHERE event_type = 'call_completed'").fetchone()[0] == 1


def test_status_updates_only_move_forward(db: psycopg.Connection) -> None:
    lead = add_consenting_lead(db, add_broker(db))
    call_id, vapi_id = add_call(db, lead)
    assert process(db, add_inbox(db, status_message(vapi_id, "in-progress", timestamp=2))) == "status:in-progress"
    assert process(db, add_inbox(db, status_message(vapi_id, "ringing", timestamp=1))) == "status_stale"
    assert process(db, add_inbox(db, report_message(vapi_id, outcome=None, ended_reason="customer-busy"))) == "busy"
    # a status update that arrives after the report (out of order) leaves the call ended
    assert process(db, add_inbox(db, status_message(vapi_id, "ringing", timestamp=3))) == "status_stale"
    assert db.execute("SELECT status, outcome FROM calls WHERE id = %s", (call_id,)).fetchone() == ("ended", "busy")


def test_report_for_an_unknown_call_goes_to_the_dlq(db: psycopg.Connection) -> None:
    event = add_inbox(db, report_message("vapi-never-placed"))
    assert process(db, event) == "dlq"
    assert db.execute("SELECT status FROM webhook_events WHERE id = %s", (event,)).fetchone()[0] == "failed"
    assert db.execute("SELECT stage, source_ref FROM pipeline_dlq").fetchall() == [
        ("call_outcomes", f"webhook_events:{event}")]


def test_report_found_by_idempotency_key_when_the_vapi_id_was_not_saved_yet(db: psycopg.Connection) -> None:
    lead = add_consenting_lead(db, add_broker(db))
    call_id, _ = add_call(db, lead)
    db.execute("UPDATE calls SET vapi_call_id = NULL WHERE id = %s", (call_id,))
    message = report_message("vapi-late-id")
    message["message"]["call"]["assistantOverrides"] = {"metadata": {"idempotency_key": f"call:{lead.id}:1"}}
    assert process(db, add_inbox(db, message)) == "booked"
    assert db.execute("SELECT vapi_call_id FROM calls WHERE id = %s", (call_id,)).fetchone()[0] == "vapi-late-id"


def test_callback_sets_the_follow_up_time(db: psycopg.Connection) -> None:
    lead = add_consenting_lead(db, add_broker(db))
    _, vapi_id = add_call(db, lead)
    assert process(db, add_inbox(db, report_message(vapi_id, outcome="callback",
                                                    callbackAt="2026-07-02T18:00:00Z"))) == "callback"
    assert db.execute("SELECT next_call_at = '2026-07-02T18:00:00Z', campaign_status::text FROM leads WHERE id = %s",
                      (lead.id,)).fetchone() == (True, "replied")


def test_not_interested_is_do_not_contact(db: psycopg.Connection) -> None:
    lead = add_consenting_lead(db, add_broker(db))
    _, vapi_id = add_call(db, lead)
    assert process(db, add_inbox(db, report_message(vapi_id, outcome="not_interested"))) == "not_interested"
    assert lead_state(db, lead.id)[0] == "do_not_contact"


def test_opt_out_in_the_transcript_revokes_consent_and_suppresses(db: psycopg.Connection) -> None:
    lead = add_consenting_lead(db, add_broker(db))
    _, vapi_id = add_call(db, lead)
    message = report_message(vapi_id, outcome="callback", ended_reason="customer-ended-call",
                             transcript="AI: Is now a good time?\nUser: Stop calling me, I want to opt out.")
    assert process(db, add_inbox(db, message)) == "opted_out"
    assert lead_state(db, lead.id)[:2] == ("do_not_contact", False)
    assert db.execute("SELECT source FROM suppression_list WHERE channel = 'phone' AND value = %s",
                      (lead.phone,)).fetchone() == ("revocation",)
    assert db.execute("SELECT decision, method, phone_number FROM lead_consent_audit WHERE lead_id = %s "
                      "ORDER BY id DESC LIMIT 1", (lead.id,)).fetchone() == ("revoked", "voice_call", lead.phone)


def test_no_answer_retries_later_and_the_fifth_failure_is_do_not_contact(db: psycopg.Connection) -> None:
    lead = add_consenting_lead(db, add_broker(db))
    _, vapi_id = add_call(db, lead, attempt=4)
    assert process(db, add_inbox(db, report_message(vapi_id, outcome=None, ended_reason="voicemail"))) == "voicemail"
    assert lead_state(db, lead.id) == ("replied", True, True)  # retry later
    _, fifth = add_call(db, lead, attempt=5)
    assert process(db, add_inbox(db, report_message(fifth, outcome=None,
                                                    ended_reason="customer-did-not-answer"))) == "no_answer"
    assert lead_state(db, lead.id)[0] == "do_not_contact"
    assert db.execute("SELECT status FROM lead_number_assignments WHERE lead_id = %s", (lead.id,)).fetchone()[0] \
        == "unreachable"


def test_number_health_follows_answer_rate(db: psycopg.Connection) -> None:
    lead = add_consenting_lead(db, add_broker(db))
    _, first = add_call(db, lead, attempt=1)
    process(db, add_inbox(db, report_message(first, outcome=None, ended_reason="customer-did-not-answer")))
    low = db.execute("SELECT health_score::float FROM broker_phone_numbers").fetchone()[0]
    _, second = add_call(db, lead, attempt=2)
    process(db, add_inbox(db, report_message(second, outcome="callback")))
    high = db.execute("SELECT health_score::float FROM broker_phone_numbers").fetchone()[0]
    assert low == pytest.approx(100 * 1 / 3, abs=0.01) and high == 50.0


def test_checks_catch_a_call_without_consent_and_an_unapplied_booking(db, postgres) -> None:
    import dagster as dg

    from equity_assets.voice.checks import bookings_applied, calls_had_consent

    lead = add_consenting_lead(db, add_broker(db))
    call_id, vapi_id = add_call(db, lead)
    ctx = dg.build_asset_check_context()
    assert calls_had_consent(ctx, postgres).passed
    db.execute("UPDATE calls SET dialed_number = '+12125550999' WHERE id = %s", (call_id,))
    assert not calls_had_consent(ctx, postgres).passed
    assert process(db, add_inbox(db, report_message(vapi_id))) == "booked"
    assert bookings_applied(ctx, postgres).passed
    db.execute("DELETE FROM billing_events")
    assert not bookings_applied(ctx, postgres).passed
