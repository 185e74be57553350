"""`daily_campaign_batch` → blocking checks → `instantly_campaign_leads`, on PostgreSQL and the sandbox."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import urlsplit

import dagster as dg
import yaml

from equity_assets.campaign.contactable import refresh_contactable
from equity_assets.campaign.feeder import select_day_in_groups
from equity_assets.campaign.push import ChunkVerdict, record_verdict, stream_pending_sends
from equity_assets.sandbox import SandboxControl
from equity_assets.security.consent import verify_and_consume

from .helpers import (
    add_broker,
    add_leads,
    email_of,
    materialization_metadata,
    refresh,
    run_campaign,
    select_only,
    sends,
    suppress,
)

MONDAY = "2026-11-16"


def received(control: SandboxControl, broker) -> list[dict]:
    return control.campaign_leads(f"camp-{broker}")


def test_each_broker_gets_its_cap_of_best_scored_leads(db, campaign, sandbox_control):
    a, b = add_broker(db, cap=3), add_broker(db, cap=5)
    leads_a = add_leads(db, a, [10, 90, 50, 70, 30, 80])
    leads_b = add_leads(db, b, [float(s) for s in range(1, 9)])
    refresh(campaign)

    result = run_campaign(campaign, partition=MONDAY)

    assert result.success
    rows = sends(db, date(2026, 11, 16))
    chosen_a = {lead for _, lead, broker, _ in rows if broker == a}
    chosen_b = {lead for _, lead, broker, _ in rows if broker == b}
    assert chosen_a == {leads_a[1], leads_a[5], leads_a[3]}  # scores 90, 80, 70
    assert chosen_b == set(leads_b[3:])  # the five best of 1..8
    assert {status for *_, status in rows} == {"pushed"}
    statuses = dict(db.execute("SELECT id, campaign_status::text FROM leads WHERE added_to_campaign_at IS NOT NULL"))
    assert set(statuses) == chosen_a | chosen_b and set(statuses.values()) == {"active"}
    assert sorted(lead["email"] for lead in received(sandbox_control, a)) == sorted(email_of(db, x) for x in chosen_a)
    assert len(received(sandbox_control, b)) == 5
    assert materialization_metadata(result, "daily_campaign_batch")["selected"] == 8
    assert materialization_metadata(result, "instantly_campaign_leads")["pushed"] == 8
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {"no_lead_in_two_batches": True, "broker_daily_cap_held": True, "no_suppressed_or_dnc_lead": True,
                      "campaign_batch_matches_schema": True, "no_stale_queued_sends": True}


def test_consent_link_in_instantly_is_a_working_token(db, campaign, sandbox_control, pipeline_postgres):
    broker = add_broker(db, cap=2)
    add_leads(db, broker, [60, 40])
    refresh(campaign)
    assert run_campaign(campaign, partition=MONDAY).success

    lead = received(sandbox_control, broker)[0]
    url = urlsplit(lead["custom_variables"]["consent_url"])
    assert url.scheme == "http" and url.path.startswith("/consent/")
    token = url.path.removeprefix("/consent/")
    with pipeline_postgres.connection() as conn:
        decision = verify_and_consume(conn, token, now=datetime.now(UTC))
    assert decision.accepted and str(decision.lead_id) == lead["custom_variables"]["lead_id"]


def test_backfill_of_three_missed_days_in_one_run_sends_no_lead_twice(db, campaign, sandbox_control):
    a, b = add_broker(db, cap=3), add_broker(db, cap=2)
    leads_a = add_leads(db, a, [float(s) for s in range(100, 80, -1)])  # best first
    add_leads(db, b, [float(s) for s in range(1, 21)])
    refresh(campaign)

    result = run_campaign(campaign, partition_range=("2026-11-16", "2026-11-18"))

    assert result.success
    rows = sends(db)
    per_day_broker: dict[tuple, int] = {}
    for day, _, broker, _ in rows:
        per_day_broker[(day, broker)] = per_day_broker.get((day, broker), 0) + 1
    days = [date(2026, 11, 16), date(2026, 11, 17), date(2026, 11, 18)]
    assert per_day_broker == {**{(d, a): 3 for d in days}, **{(d, b): 2 for d in days}}
    assert len({lead for _, lead, _, _ in rows}) == len(rows) == 15
    # oldest day first: Monday got broker A's three best leads
    assert {lead for day, lead, broker, _ in rows if day == days[0] and broker == a} == set(leads_a[:3])
    assert materialization_metadata(result, "daily_campaign_batch")["dates"] == 3

    # the schedule's own run for Thursday, and a repeat of the whole backfill, add no duplicates
    thursday = run_campaign(campaign, partition="2026-11-19")
    repeat = run_campaign(campaign, partition_range=("2026-11-16", "2026-11-18"))
    assert thursday.success and repeat.success
    rows = sends(db)
    assert len(rows) == 20 and len({lead for _, lead, _, _ in rows}) == 20
    uploads = received(sandbox_control, a) + received(sandbox_control, b)
    assert len(uploads) == 20 and {lead["upload_count"] for lead in uploads} == {1}
    # what Instantly *received*, not what it kept (it drops repeats): nothing was sent twice
    assert sandbox_control.stats()["records"]["instantly_leads"] == 20
    for run in (result, thursday, repeat):
        assert materialization_metadata(run, "instantly_campaign_leads")["already_in_campaign"] == 0
    assert materialization_metadata(repeat, "instantly_campaign_leads")["pushed"] == 0


def test_partitions_materialized_out_of_order_never_share_a_lead(db, campaign, sandbox_control):
    broker = add_broker(db, cap=4)
    add_leads(db, broker, [float(s) for s in range(10)])
    refresh(campaign)
    for partition in ("2026-11-18", "2026-11-16", "2026-11-17"):  # e.g. a multi-run backfill
        assert run_campaign(campaign, partition=partition).success
    rows = sends(db)
    assert [len([r for r in rows if r[0] == d]) for d in (date(2026, 11, 16), date(2026, 11, 17), date(2026, 11, 18))] == [4, 2, 4]
    assert len({lead for _, lead, _, _ in rows}) == 10
    assert len(received(sandbox_control, broker)) == 10


def test_rerunning_a_date_only_tops_it_up_to_the_cap(db, campaign):
    broker = add_broker(db, cap=3)
    add_leads(db, broker, [50, 40])
    refresh(campaign)
    assert run_campaign(campaign, partition=MONDAY).success
    assert len(sends(db)) == 2

    add_leads(db, broker, [90, 80, 70])
    refresh(campaign)
    result = run_campaign(campaign, partition=MONDAY)

    assert result.success
    assert len(sends(db, date(2026, 11, 16))) == 3
    assert materialization_metadata(result, "daily_campaign_batch")["selected"] == 1
    assert run_campaign(campaign, partition=MONDAY).success
    assert len(sends(db)) == 3


def test_uncontactable_leads_are_never_batched(db, campaign, sandbox_control):
    broker = add_broker(db, cap=50)
    idle = add_broker(db, cap=50, active=False)
    db.execute("INSERT INTO verification_code_map (code, channel, meaning, usable, suppress) "
               "VALUES ('ES06', 'email', 'spamtrap', false, true) ON CONFLICT (code) DO NOTHING")
    good = add_leads(db, broker, [10])
    suppressed = add_leads(db, broker, [99])
    suppress(db, email_of(db, suppressed[0]))
    dnc = add_leads(db, broker, [98], status="do_not_contact")
    unverified = add_leads(db, broker, [97], verified=False)
    spamtrap = add_leads(db, broker, [96], email_codes=["ES01", "ES06"])
    fresh = add_leads(db, broker, [95], status="new")  # contactable, but not queued for the feeder yet
    add_leads(db, None, [94])  # no broker
    add_leads(db, idle, [93])  # broker inactive
    late = add_leads(db, broker, [92])
    refresh(campaign)
    suppress(db, email_of(db, late[0]))  # unsubscribed between 05:30 and 06:00

    assert run_campaign(campaign, partition=MONDAY).success

    assert [lead for _, lead, _, _ in sends(db)] == good
    assert [lead["email"] for lead in received(sandbox_control, broker)] == [email_of(db, good[0])]
    assert received(sandbox_control, idle) == []
    excluded = {*suppressed, *dnc, *unverified, *spamtrap}
    in_set = {r[0] for r in db.execute("SELECT lead_id FROM contactable_leads")}
    assert not excluded & in_set and fresh[0] in in_set


def test_events_are_written_once_per_lead(db, campaign):
    broker = add_broker(db, cap=5)
    add_leads(db, broker, [1, 2, 3])
    refresh(campaign)
    for _ in range(2):
        assert run_campaign(campaign, partition=MONDAY).success
    counts = dict(db.execute("SELECT event_type, count(*) FROM pipeline_events "
                             "WHERE event_type IN ('campaign_queued', 'email_sent') GROUP BY event_type"))
    assert counts == {"campaign_queued": 3, "email_sent": 3}
    assert db.execute("SELECT count(DISTINCT lead_id) FROM pipeline_events WHERE event_type = 'email_sent'").fetchone()[0] == 3


def test_an_answer_recorded_twice_marks_and_logs_each_send_once(db, campaign):
    """`email_sent` is written unkeyed: only for the sends the same statement turned pushed."""
    broker = add_broker(db, cap=5)
    add_leads(db, broker, [1, 2])
    refresh(campaign)
    select_only(db, MONDAY)
    day = date.fromisoformat(MONDAY)
    with db.transaction():
        verdict = ChunkVerdict(accepted=list(stream_pending_sends(db, day)))
    for _ in range(2):
        with db.transaction():
            record_verdict(db, verdict, batch_date=day, campaign="c", now=datetime.now(UTC), run_id=None)
    assert [status for _, _, _, status in sends(db)] == ["pushed", "pushed"]
    assert db.execute("SELECT count(*), count(DISTINCT lead_id), count(idempotency_key) FROM pipeline_events "
                      "WHERE event_type = 'email_sent'").fetchone() == (2, 2, 0)


def test_broker_without_any_campaign_is_not_fed(db, campaign):
    broker = add_broker(db, cap=5)
    db.execute("UPDATE brokers SET instantly_campaign_id = NULL WHERE id = %s", (broker,))
    add_leads(db, broker, [1, 2])
    refresh(campaign)
    assert run_campaign(campaign, partition=MONDAY).success
    assert sends(db) == []
    assert db.execute("SELECT count(*) FROM leads WHERE campaign_status = 'queued'").fetchone()[0] == 2


def test_lead_that_opts_out_between_selection_and_push_is_withdrawn(db, campaign, sandbox_control):
    broker = add_broker(db, cap=5)
    leads = add_leads(db, broker, [3, 2, 1])
    refresh(campaign)
    select_only(db, MONDAY)
    suppress(db, email_of(db, leads[0]))
    db.execute("UPDATE leads SET campaign_status = 'do_not_contact' WHERE id = %s", (leads[1],))

    result = run_campaign(campaign, partition=MONDAY)

    assert result.success
    assert [lead["email"] for lead in received(sandbox_control, broker)] == [email_of(db, leads[2])]
    status = {lead: s for _, lead, _, s in sends(db)}
    assert status == {leads[0]: "failed", leads[1]: "failed", leads[2]: "pushed"}
    errors = {r[0] for r in db.execute("SELECT error FROM campaign_sends WHERE status = 'failed'")}
    assert errors == {"withdrawn before push: email suppressed", "withdrawn before push: do_not_contact"}


def test_a_failing_blocking_check_stops_the_push(db, campaign, sandbox_control):
    broker = add_broker(db, cap=4)
    add_leads(db, broker, [4, 3, 2, 1])
    refresh(campaign)
    select_only(db, MONDAY)
    db.execute("UPDATE brokers SET daily_cap = 2 WHERE id = %s", (broker,))  # the day now breaks its cap

    result = run_campaign(campaign, partition=MONDAY)

    assert not result.success
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks["broker_daily_cap_held"] is False
    assert received(sandbox_control, broker) == []
    assert {s for *_, s in sends(db)} == {"queued"}
    materialized = {e.asset_key for e in result.get_asset_materialization_events()}
    assert dg.AssetKey("instantly_campaign_leads") not in materialized


def test_a_lead_put_back_in_the_queue_is_not_sent_again(db, campaign, sandbox_control):
    broker = add_broker(db, cap=5)
    first = add_leads(db, broker, [9])
    refresh(campaign)
    assert run_campaign(campaign, partition=MONDAY).success
    db.execute("UPDATE leads SET campaign_status = 'queued' WHERE id = %s", (first[0],))  # e.g. a bad manual fix
    add_leads(db, broker, [1])
    refresh(campaign)

    assert run_campaign(campaign, partition="2026-11-17").success

    assert [lead for day, lead, _, _ in sends(db) if day == date(2026, 11, 17)] != first
    assert len(sends(db)) == 2 and len(received(sandbox_control, broker)) == 2


def test_a_missing_consent_secret_fails_the_day_at_once_and_selects_nothing(db, campaign, sandbox_control, monkeypatch):
    broker = add_broker(db, cap=2)
    add_leads(db, broker, [5])
    refresh(campaign)
    monkeypatch.delenv("EQUITY_CONSENT_SECRET")

    result = run_campaign(campaign, partition=MONDAY)

    assert not result.success
    (failure,) = result.get_step_failure_events()
    assert "EQUITY_CONSENT_SECRET" in str(failure.step_failure_data.error)
    assert failure.step_failure_data.user_failure_data is not None  # a `Failure`: op retries skip it
    assert sends(db) == [] and received(sandbox_control, broker) == []
    # and the daemon does not re-run a run whose step failed (only runs whose process died)
    instance = yaml.safe_load((Path(__file__).resolve().parents[2] / "deploy" / "dev" / "dagster.yaml").read_text())
    assert instance["run_retries"]["retry_on_asset_or_op_failure"] is False


def test_overlapping_selections_of_one_date_fill_each_broker_to_its_cap_once(db, pipeline_postgres):
    """Broker groups are selected in parallel transactions; two selections of the same date at once
    (split into different groups) still give each broker exactly its cap, no lead twice."""
    caps = [3, 5, 2, 4, 6, 1, 3]
    brokers = [add_broker(db, cap=cap) for cap in caps]
    for broker in brokers:
        add_leads(db, broker, [float(s) for s in range(8)])
    with pipeline_postgres.connection() as conn:
        refresh_contactable(conn, full=True)

    def select(groups: int) -> int:
        return select_day_in_groups(pipeline_postgres.connection, date(2026, 11, 16), default_campaign=None,
                                    now=datetime.now(UTC), groups=groups).selected

    with ThreadPoolExecutor(max_workers=2) as pool:
        selected = list(pool.map(select, (2, 3)))

    rows = sends(db, date(2026, 11, 16))
    assert sum(selected) == len(rows) == sum(caps)
    assert len({lead for _, lead, _, _ in rows}) == len(rows)
    assert [len([r for r in rows if r[2] == broker]) for broker in brokers] == caps
    assert db.execute("SELECT count(*) FROM consent_tokens").fetchone()[0] == sum(caps)
    assert db.execute("SELECT count(*) FROM pipeline_events WHERE event_type = 'campaign_queued'").fetchone()[0] == sum(caps)


def test_a_lead_reassigned_after_the_refresh_waits_for_the_next_one(db, campaign, sandbox_control):
    first, second = add_broker(db, cap=5), add_broker(db, cap=5)
    (moved,) = add_leads(db, first, [50.0])
    refresh(campaign)
    # The 05:30 set says `first` mails this lead; it is reassigned before 06:00.
    db.execute("UPDATE leads SET assigned_broker_id = %s WHERE id = %s", (second, moved))

    select_only(db, MONDAY)
    assert sends(db) == []  # neither broker: the set's verdict was for the other one

    refresh(campaign)
    select_only(db, "2026-11-17")
    assert [(lead, broker) for _, lead, broker, _ in sends(db)] == [(moved, second)]
