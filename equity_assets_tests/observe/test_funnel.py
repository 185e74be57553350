"""pipeline_funnel counts leads per stage from the stage tables, and shows where they come from."""

import dagster as dg
import psycopg

from equity_assets.definitions import defs
from equity_assets.observe.assets import pipeline_funnel
from equity_assets.observe.events import record_event


def funnel(postgres) -> dict:
    result = dg.materialize([pipeline_funnel], resources={"postgres": postgres})
    assert result.success
    return {k: v.value for k, v in result.asset_materializations_for_node("pipeline_funnel")[0].metadata.items()}


def test_funnel_counts_each_lead_once_per_stage_however_many_events(postgres, clean_db):
    with psycopg.connect(clean_db.admin_dsn, autocommit=True) as conn:
        conn.execute("DELETE FROM contactable_leads")  # kept across tests by the campaign ones
        broker = conn.execute("INSERT INTO brokers (name) VALUES ('B') RETURNING id").fetchone()[0]
        leads = [r[0] for r in conn.execute(
            """INSERT INTO leads (email, email_verified, assigned_broker_id)
               SELECT 'l' || n || '@example.com', n <= 3, CASE WHEN n <= 2 THEN %s::uuid END
               FROM generate_series(1, 4) n RETURNING id""", (broker,))]
        for lead, status in zip(leads[:2], ("pushed", "queued"), strict=True):
            conn.execute("INSERT INTO campaign_sends (batch_date, lead_id, broker_id, status) VALUES ('2026-11-16', %s, %s, %s)",
                         (lead, broker, status))
        for _ in range(3):  # a refresh or re-run writes its events again: not more leads
            record_event(conn, "email_sent", stage="instantly_campaign_leads", lead_id=str(leads[0]), duration_ms=5)
            record_event(conn, "contactable_refreshed", stage="contactable_leads", count=4, duration_ms=50)

    md = funnel(postgres)

    assert (md["ingested_leads"], md["email_verified_leads"], md["assigned_leads"]) == (4, 3, 2)
    assert (md["in_batch_leads"], md["email_sent_leads"], md["sends_queued"]) == (2, 1, 1)
    assert md["contactable_leads"] == 0 and md["email_replied_leads"] == 0
    assert md["contactable_leads_p95_ms"] == 50.0
    assert funnel(postgres)["email_sent_leads"] == 1  # a second refresh does not grow the counts


def test_funnel_shows_its_upstream_and_refreshes_on_a_schedule():
    graph = defs.resolve_asset_graph()
    parents = graph.get(dg.AssetKey("pipeline_funnel")).parent_keys
    assert {dg.AssetKey(k) for k in ("verified_leads", "contactable_leads", "instantly_campaign_leads")} <= parents
    assert all(graph.has(key) for key in parents)
    schedule = defs.resolve_schedule_def("pipeline_funnel_schedule")
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert schedule.job_name == "pipeline_funnel_job"
