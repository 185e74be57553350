"""The feeder's dry run: the reasons are right, it matches what the feeder then does, and it writes nothing."""

import json
from datetime import date

from equity_assets.campaign.contactable import refresh_contactable
from equity_assets.campaign.preview import preview_day
from equity_assets.cli import main

from .helpers import add_broker, add_leads, email_of, select_only, suppress

DAY1, DAY2 = "2026-03-02", "2026-03-03"

_STATE_SQL = """
SELECT (SELECT count(*) FROM campaign_sends), (SELECT count(*) FROM consent_tokens),
       (SELECT count(*) FROM pipeline_events),
       (SELECT string_agg(id::text || campaign_status::text, ',' ORDER BY id) FROM leads),
       (SELECT max(xmin::text::bigint) FROM leads)
"""


def _world(db):
    capped = add_broker(db, cap=2)
    ranked = add_leads(db, capped, [90, 80, 70, 60, 50])
    late_unsubscribe = add_leads(db, capped, [99])[0]
    unscored = add_leads(db, capped, [None], status="new")[0]
    inactive = add_broker(db, active=False)
    idle = add_leads(db, inactive, [85])[0]
    no_campaign = add_broker(db)
    db.execute("UPDATE brokers SET instantly_campaign_id = NULL WHERE id = %s", (no_campaign,))
    stranded = add_leads(db, no_campaign, [75])[0]
    with db.transaction():
        refresh_contactable(db, full=True)
    select_only(db, DAY1)  # takes 99 and 90 of the capped broker: both already sent on DAY2
    suppress(db, email_of(db, ranked[2]))  # unsubscribed after the 05:30 refresh: still contactable
    return capped, ranked, late_unsubscribe, unscored, idle, stranded


def test_preview_gives_each_lead_its_reason_and_matches_the_feeder(db):
    capped, ranked, late, unscored, idle, stranded = _world(db)
    before = db.execute(_STATE_SQL).fetchone()
    preview = preview_day(db, date.fromisoformat(DAY2), default_campaign=None)
    assert db.execute(_STATE_SQL).fetchone() == before  # nothing written, not even a lead touched

    reasons = {item["lead_id"]: item["reason"] for item in preview["not_sent"]}
    assert reasons == {
        str(late): "already_sent", str(ranked[0]): "already_sent",
        str(ranked[2]): "suppressed",
        str(ranked[4]): "cap",
        str(unscored): "not_scored",
        str(idle): "broker_inactive",
        str(stranded): "no_campaign",
    }
    assert [i["lead_id"] for i in preview["would_send"]] == [str(ranked[1]), str(ranked[3])]
    cap = next(i for i in preview["not_sent"] if i["reason"] == "cap")
    assert (cap["rank"], cap["room"], cap["cutoff_score"]) == (3, 2, 60.0)
    sent = next(i for i in preview["not_sent"] if i["lead_id"] == str(late))
    assert sent["batch_date"] == DAY1
    assert preview["counts"]["would_send"] == 2 and preview["counts"]["already_sent"] == 2

    select_only(db, DAY2)
    chosen = {str(r[0]) for r in db.execute("SELECT lead_id FROM campaign_sends WHERE batch_date = %s", (DAY2,))}
    assert chosen == {i["lead_id"] for i in preview["would_send"]}


def test_preview_of_one_broker_and_from_the_command_line(db, campaign_db, monkeypatch, capsys):
    capped, ranked, *_ = _world(db)
    monkeypatch.setenv("EQUITY_DATABASE_URL", campaign_db.app_dsn)
    monkeypatch.setenv("INSTANTLY_CAMPAIGN_ID", "fallback-campaign")
    assert main(["campaign", "preview", "--date", DAY2, "--broker", str(capped), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert {i["broker_id"] for i in result["would_send"] + result["not_sent"]} == {str(capped)}
    assert [i["lead_id"] for i in result["would_send"]] == [str(ranked[1]), str(ranked[3])]
    # the fallback campaign feeds the broker without one
    assert main(["campaign", "preview", "--date", DAY2, "--json"]) == 0
    everyone = json.loads(capsys.readouterr().out)
    assert everyone["counts"]["no_campaign"] == 0
    assert {i["campaign_id"] for i in everyone["would_send"]} >= {"fallback-campaign"}
