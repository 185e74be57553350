"""Instantly refuses part of a chunk: only the leads it took count as sent; each refused one is
dead-lettered on its own and its address is not picked again."""

from __future__ import annotations

from equity_assets.vendors.instantly import InstantlyLead
from equity_assets.campaign.push import INVALID_REASON

from .helpers import add_broker, add_leads, definitions, instantly, materialization_metadata, refresh, run_campaign, sends

MONDAY, TUESDAY = "2026-11-16", "2026-11-17"


def make_invalid(db, leads) -> None:
    # passes our CHECK (lower case) but has no top-level domain: Instantly refuses it
    db.execute("UPDATE leads SET email = 'nobody-' || id::text || '@localhost' WHERE id = ANY(%s)", (leads,))


def outcome(db):
    status = {lead: s for _, lead, _, s in sends(db)}
    dlq = db.execute("SELECT reason, payload->>'lead_id' FROM pipeline_dlq WHERE stage = 'instantly_campaign_leads'").fetchall()
    sent = {r[0] for r in db.execute("SELECT lead_id FROM pipeline_events WHERE event_type = 'email_sent'")}
    return status, dlq, sent


def test_only_accepted_leads_are_pushed_and_each_rejection_is_its_own_dead_letter(db, campaign, sandbox_control):
    broker = add_broker(db, cap=10)
    leads = add_leads(db, broker, [9, 8, 7, 6, 5])
    bad = leads[1:3]
    make_invalid(db, bad)
    refresh(campaign)

    result = run_campaign(campaign, partition=MONDAY)

    assert result.success
    status, dlq, sent = outcome(db)
    assert {lead for lead, s in status.items() if s == "pushed"} == set(leads) - set(bad) == sent
    assert {lead for lead, s in status.items() if s == "failed"} == set(bad)
    assert sorted(dlq) == sorted((INVALID_REASON, str(lead)) for lead in bad)
    assert len(sandbox_control.campaign_leads(f"camp-{broker}")) == 3
    meta = materialization_metadata(result, "instantly_campaign_leads")
    assert (meta["pushed"], meta["rejected"], meta["unpushed"]) == (3, 2, 0)
    # the refused addresses are off the contactable set and are not picked on the next day
    unusable = dict(db.execute("SELECT id, email_verified FROM leads WHERE id = ANY(%s)", (bad,)).fetchall())
    assert unusable == {lead: False for lead in bad}
    suppressed = db.execute("SELECT count(*) FROM suppression_list WHERE lead_id = ANY(%s) AND source = 'provider'",
                            (bad,)).fetchone()[0]
    assert suppressed == 2
    db.execute("UPDATE leads SET campaign_status = 'queued' WHERE id = ANY(%s)", (bad,))
    refresh(campaign)
    assert run_campaign(campaign, partition=TUESDAY).success
    assert len(sends(db)) == 5


def test_leads_already_in_the_campaign_and_refused_ones_in_one_chunk_are_told_apart(
    db, pipeline_postgres, sandbox_url, sandbox_control
):
    broker = add_broker(db, cap=10)
    earlier, bad, fresh = add_leads(db, broker, [9, 8, 7])
    make_invalid(db, [bad])
    resource = instantly(sandbox_url)
    campaign = definitions(pipeline_postgres, resource)
    refresh(campaign)
    # A previous attempt landed `earlier` in Instantly but died before recording it.
    email = db.execute("SELECT email FROM leads WHERE id = %s", (earlier,)).fetchone()[0]
    resource.add_leads(leads=[InstantlyLead(email=email)], campaign_id=f"camp-{broker}")

    result = run_campaign(campaign, partition=MONDAY)

    assert result.success
    status, dlq, sent = outcome(db)
    assert status == {earlier: "pushed", fresh: "pushed", bad: "failed"}
    assert sent == {earlier, fresh}
    assert dlq == [(INVALID_REASON, str(bad))]
