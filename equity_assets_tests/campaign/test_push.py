"""Pushing to Instantly: partial failures resume, throttling and server errors are retried."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime
from urllib.parse import urlsplit

import pytest

from equity_assets.campaign import push

from equity_assets.sandbox import VENDOR_PATHS, SandboxConfig, SandboxControl
from equity_assets.security.consent import verify_and_consume

from .helpers import (
    add_broker,
    add_leads,
    definitions,
    email_of,
    instantly,
    materialization_metadata,
    refresh,
    run_campaign,
    select_only,
    sends,
    suppress,
)

MONDAY = "2026-11-16"


def tokens_by_lead(control: SandboxControl, campaign_id: str) -> dict[str, str]:
    return {
        lead["custom_variables"]["lead_id"]: urlsplit(lead["custom_variables"]["consent_url"]).path.rsplit("/", 1)[1]
        for lead in control.campaign_leads(campaign_id)
    }


def lead_statuses(db) -> dict[tuple[str, str], int]:
    """(send status, lead status) → how many, over the leads that have a send."""
    return {(send, lead): n for send, lead, n in db.execute(
        """SELECT cs.status, l.campaign_status::text, count(*) FROM campaign_sends cs JOIN leads l ON l.id = cs.lead_id
           GROUP BY 1, 2""")}


def test_a_lead_that_replied_before_its_push_stays_replied(db, campaign, sandbox_control):
    broker = add_broker(db, cap=3)
    quick, other, opted_out = add_leads(db, broker, [90.0, 80.0, 70.0])
    refresh(campaign)
    select_only(db, MONDAY)
    assert lead_statuses(db) == {("queued", "queued"): 3}
    # between selection and push: one lead answers an earlier mail, one opts out
    db.execute("UPDATE leads SET campaign_status = 'replied' WHERE id = %s", (quick,))
    db.execute("UPDATE leads SET campaign_status = 'do_not_contact' WHERE id = %s", (opted_out,))

    result = run_campaign(campaign, partition=MONDAY)

    assert result.success
    statuses = dict(db.execute("SELECT id, campaign_status::text FROM leads"))
    assert statuses == {quick: "replied", other: "active", opted_out: "do_not_contact"}
    assert dict(db.execute("SELECT lead_id, status FROM campaign_sends")) == {
        quick: "pushed", other: "pushed", opted_out: "failed"}


def test_rerun_after_instantly_failed_half_way_pushes_only_the_rest(db, pipeline_postgres, start_sandbox):
    # campaigns are pushed in campaign-id order: `a` is whichever broker's campaign sorts first
    a, b = sorted((add_broker(db, cap=15), add_broker(db, cap=15)), key=lambda broker: f"camp-{broker}")
    add_leads(db, a, [float(s) for s in range(15)])
    add_leads(db, b, [float(s) for s in range(15)])
    # One request per minute and no retries: the first chunk lands, the second is throttled.
    outage_url = start_sandbox(SandboxConfig(instantly_rate_limit_per_min=1))
    outage = SandboxControl(outage_url)
    impatient = definitions(pipeline_postgres, instantly(outage_url, chunk_size=10, max_retries=0))
    refresh(impatient)

    failed = run_campaign(impatient, partition=MONDAY)

    assert not failed.success
    assert len(outage.campaign_leads(f"camp-{a}")) == 10
    assert outage.campaign_leads(f"camp-{b}") == []
    status = [s for *_, s in sends(db)]
    assert status.count("pushed") == 10 and status.count("queued") == 20
    # a lead turns active when Instantly has it, not when it is selected
    assert lead_statuses(db) == {("pushed", "active"): 10, ("queued", "queued"): 20}
    tokens_before = dict(db.execute("SELECT lead_id, consent_token_id FROM campaign_sends"))

    # The re-run talks to a workspace that has seen nothing: whatever it receives was re-sent.
    healthy_url = start_sandbox(SandboxConfig())
    healthy = SandboxControl(healthy_url)
    rerun = run_campaign(definitions(pipeline_postgres, instantly(healthy_url, chunk_size=10)), partition=MONDAY)

    assert rerun.success
    assert materialization_metadata(rerun, "instantly_campaign_leads")["pushed"] == 20
    first = {lead["email"] for lead in outage.campaign_leads(f"camp-{a}")}
    second = [lead["email"] for c in (a, b) for lead in healthy.campaign_leads(f"camp-{c}")]
    assert len(second) == 20 and not first & set(second)
    assert len(first | set(second)) == 30
    assert healthy.stats()["records"]["instantly_leads"] == 20
    assert {s for *_, s in sends(db)} == {"pushed"}
    assert lead_statuses(db) == {("pushed", "active"): 30}
    # the queued rows kept their tokens: the links already minted are the ones mailed
    assert dict(db.execute("SELECT lead_id, consent_token_id FROM campaign_sends")) == tokens_before
    assert db.execute("SELECT count(*) FROM consent_tokens").fetchone()[0] == 30


def test_transient_server_errors_and_throttling_are_retried(db, campaign, sandbox_control):
    broker = add_broker(db, cap=5)
    add_leads(db, broker, [1, 2, 3, 4, 5])
    refresh(campaign)
    select_only(db, MONDAY)
    sandbox_control.set_faults(path_faults={VENDOR_PATHS["instantly"]: {"fail_next": 2, "fail_next_status": 503}})

    result = run_campaign(campaign, partition="2026-11-16")

    assert result.success
    assert materialization_metadata(result, "instantly_campaign_leads")["retries"] == 2
    assert len(sandbox_control.campaign_leads(f"camp-{broker}")) == 5

    add_leads(db, broker, [6, 7])
    refresh(campaign)
    sandbox_control.set_faults(path_faults={
        VENDOR_PATHS["instantly"]: {"fail_next": 2, "fail_next_status": 429, "retry_after_s": 0}})
    throttled = run_campaign(campaign, partition="2026-11-17")

    assert throttled.success
    assert sandbox_control.stats()["injected_429"] == 2
    assert len(sandbox_control.campaign_leads(f"camp-{broker}")) == 7


def test_an_outage_fails_the_run_keeps_sends_queued_and_a_rerun_delivers(db, campaign, sandbox_control):
    broker = add_broker(db, cap=5)
    add_leads(db, broker, [1, 2, 3])
    refresh(campaign)
    sandbox_control.set_faults(path_faults={VENDOR_PATHS["instantly"]: {"fail_next": 100, "fail_next_status": 502}})

    failed = run_campaign(campaign, partition=MONDAY)

    assert not failed.success
    assert sandbox_control.campaign_leads(f"camp-{broker}") == []
    rows = db.execute("SELECT status, error FROM campaign_sends").fetchall()
    assert {r[0] for r in rows} == {"queued"} and {r[1] for r in rows} == {"instantly HTTP 502 after 3 retries"}
    assert db.execute("SELECT count(*) FROM pipeline_events WHERE event_type = 'email_sent'").fetchone()[0] == 0

    sandbox_control.set_faults(path_faults={VENDOR_PATHS["instantly"]: None})
    assert run_campaign(campaign, partition=MONDAY).success
    assert len(sandbox_control.campaign_leads(f"camp-{broker}")) == 3
    assert db.execute("SELECT count(*) FROM campaign_sends WHERE status = 'pushed' AND error IS NULL").fetchone()[0] == 3


def test_expired_tokens_of_pending_sends_are_reminted(db, campaign, sandbox_control, pipeline_postgres):
    broker = add_broker(db, cap=3)
    add_leads(db, broker, [1, 2, 3])
    refresh(campaign)
    select_only(db, MONDAY)
    old = set(db.execute("SELECT consent_token_id FROM campaign_sends"))
    # The push happens eight days after the selection.
    db.execute("UPDATE consent_tokens SET issued_at = now() - interval '8 days', expires_at = now() - interval '1 day'")

    result = run_campaign(campaign, partition=MONDAY)

    assert result.success
    assert materialization_metadata(result, "instantly_campaign_leads")["tokens_reminted"] == 3
    assert not old & set(db.execute("SELECT consent_token_id FROM campaign_sends"))
    tokens = tokens_by_lead(sandbox_control, f"camp-{broker}")
    with pipeline_postgres.connection() as conn:
        decisions = [verify_and_consume(conn, token, now=datetime.now(UTC)) for token in tokens.values()]
    assert all(d.accepted for d in decisions)


def test_rejected_credentials_stop_the_push_at_the_first_call(db, pipeline_postgres, sandbox_url, sandbox_control):
    for _ in range(3):
        add_leads(db, add_broker(db, cap=2), [1, 2])
    wrong_key = definitions(pipeline_postgres, instantly(sandbox_url, api_key="not-the-key"))
    refresh(wrong_key)

    result = run_campaign(wrong_key, partition=MONDAY)

    assert not result.success
    # 401 is not retried, and the two other campaigns are not tried with the same bad key
    assert sum(sandbox_control.stats()["requests"].values()) == 1
    rows = db.execute("SELECT status, error FROM campaign_sends").fetchall()
    assert len(rows) == 6 and {r[0] for r in rows} == {"queued"}
    assert sum(1 for r in rows if r[1] == "instantly HTTP 401 after 0 retries") == 2


def test_a_recording_that_fails_stops_the_uploads_and_fails_the_push(db, pipeline_postgres, sandbox_url, sandbox_control,
                                                                     monkeypatch):
    for _ in range(8):
        add_leads(db, add_broker(db, cap=2), [1, 2])
    refresh(definitions(pipeline_postgres, instantly(sandbox_url)))
    select_only(db, MONDAY)
    recorded = []

    def fails_second_time(conn, sent, *args, **kwargs):
        if recorded:
            raise RuntimeError("database went away while recording")
        recorded.append(sent.campaign)
        real_record_chunk(conn, sent, *args, **kwargs)

    def slow_reader(conn, batch_date):  # a large day: the uploads start long before the last send is read
        for send in real_stream(conn, batch_date):
            time.sleep(0.05)
            yield send

    real_record_chunk, real_stream = push.record_chunk, push.stream_pending_sends
    monkeypatch.setattr(push, "record_chunk", fails_second_time)
    monkeypatch.setattr(push, "stream_pending_sends", slow_reader)
    with pytest.raises(RuntimeError, match="went away"):
        push.push_day(pipeline_postgres.connection, instantly(sandbox_url, max_concurrency=1),
                      date.fromisoformat(MONDAY), consent_base_url="http://127.0.0.1:8080", now=datetime.now(UTC))

    # one campaign per chunk: after the failed recording, the chunks read later are not sent
    # (a chunk or two may have started while the second answer was being recorded)
    assert 2 <= sum(sandbox_control.stats()["requests"].values()) < 8
    statuses = [status for *_, status in sends(db)]
    assert statuses.count("pushed") == 2 and statuses.count("queued") == 14


def test_a_lead_that_opts_out_after_the_gates_is_withdrawn_by_the_push(db, pipeline_postgres, sandbox_url,
                                                                      sandbox_control):
    broker = add_broker(db, cap=3)
    unsubscribed, dnc, fine = add_leads(db, broker, [3, 2, 1])
    refresh(definitions(pipeline_postgres, instantly(sandbox_url)))
    select_only(db, MONDAY)
    suppress(db, email_of(db, unsubscribed))
    db.execute("UPDATE leads SET campaign_status = 'do_not_contact' WHERE id = %s", (dnc,))

    day = push.push_day(pipeline_postgres.connection, instantly(sandbox_url), date.fromisoformat(MONDAY),
                        consent_base_url="http://127.0.0.1:8080", now=datetime.now(UTC))

    assert (day.withdrawn, day.pending, day.pushed, day.unpushed) == (2, 1, 1, 0)
    assert [lead["email"] for lead in sandbox_control.campaign_leads(f"camp-{broker}")] == [email_of(db, fine)]
    assert dict(db.execute("SELECT lead_id, coalesce(error, status) FROM campaign_sends")) == {
        unsubscribed: "withdrawn before push: email suppressed",
        dnc: "withdrawn before push: do_not_contact",
        fine: "pushed",
    }
