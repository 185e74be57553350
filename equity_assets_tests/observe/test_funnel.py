"""pipeline_funnel: per-stage counts, conversion, durations, throughput and error rates, as plottable metadata."""

import dagster as dg
import psycopg
import pytest

from equity_assets.definitions import defs
from equity_assets.observe.assets import FunnelConfig, pipeline_funnel
from equity_assets.observe.events import record_event


def funnel(postgres, window_hours: int = 168) -> dict:
    result = dg.materialize([pipeline_funnel], resources={"postgres": postgres},
                            run_config={"ops": {"pipeline_funnel": {"config": {"window_hours": window_hours}}}})
    assert result.success
    return result.asset_materializations_for_node("pipeline_funnel")[0].metadata


@pytest.fixture
def four_leads(clean_db):
    """Four leads from one upload 10 h ago: deduplicated 9 h ago; three verified (8, 7, 5 h ago);
    two queued and one sent and replied; one more lead outside a 24 h window."""
    with psycopg.connect(clean_db.admin_dsn, autocommit=True) as conn:
        upload = conn.execute("""INSERT INTO uploads (source, storage_path, content_sha256, byte_size, received_at)
                                 VALUES ('csv', '/x', repeat('a', 64), 1, now() - interval '10 hours')
                                 RETURNING id""").fetchone()[0]
        leads = [r[0] for r in conn.execute(
            """INSERT INTO leads (email, email_verified, verified_at, created_at)
               SELECT 'l' || n || '@example.com', n <= 3, now() - make_interval(hours => (ARRAY[8, 7, 5, 0])[n]),
                      now() - interval '9 hours'
               FROM generate_series(1, 4) n ORDER BY n RETURNING id""")]
        conn.execute("INSERT INTO lead_sources (lead_id, upload_id, row_number, matched_on) SELECT unnest(%s::uuid[]), %s, "
                     "generate_series(1, 4), 'new'", (leads, upload))
        old = conn.execute("INSERT INTO leads (email, created_at) VALUES ('old@example.com', now() - interval '30 days') "
                           "RETURNING id").fetchone()[0]
        # events are append-only: written with their time
        conn.execute("""INSERT INTO pipeline_events (event_type, lead_id, created_at, idempotency_key)
                        VALUES ('campaign_queued', %(a)s, now() - interval '6 hours', NULL),
                               ('campaign_queued', %(b)s, now() - interval '4 hours', NULL),
                               ('email_sent', %(a)s, now() - interval '30 minutes', 'email_sent:' || %(a)s),
                               ('email_replied', %(a)s, now() - interval '10 minutes', NULL),
                               ('email_replied', %(a)s, now() - interval '5 minutes', NULL),
                               ('email_bounced', %(b)s, now() - interval '20 minutes', NULL),
                               ('email_sent', %(old)s, now() - interval '20 days', NULL)""",
                     {"a": leads[0], "b": leads[1], "old": old})
    return leads


def test_funnel_counts_converts_and_times_each_stage(postgres, four_leads):
    md = funnel(postgres, window_hours=24)

    counts = {k: md[f"{k}_leads"].value for k in ("upload_received", "dedupe_success", "email_verified",
                                                    "campaign_queued", "email_sent", "email_replied",
                                                    "consent_granted", "application_submitted")}
    assert counts == {"upload_received": 4, "dedupe_success": 4, "email_verified": 3, "campaign_queued": 2,
                      "email_sent": 1, "email_replied": 1, "consent_granted": 0, "application_submitted": 0}
    assert md["email_verified_to_campaign_queued_pct"].value == pytest.approx(66.67)
    assert md["campaign_queued_to_email_sent_pct"].value == 50.0
    # upload → dedupe: 1 h for each lead; verified → queued: 2 h and 3 h
    assert md["upload_received_to_dedupe_success_p50_s"].value == pytest.approx(3600, abs=2)
    assert md["email_verified_to_campaign_queued_p50_s"].value == pytest.approx(9000, abs=2)
    assert md["email_verified_to_campaign_queued_p95_s"].value == pytest.approx(10620, abs=2)
    # throughput in the last hour, and the bounce rate among sends
    assert (md["email_sent_per_hour"].value, md["email_replied_per_hour"].value, md["dedupe_success_per_hour"].value) \
        == (1, 1, 0)
    assert md["email_bounced_count"].value == 1 and md["email_bounced_rate_pct"].value == 50.0
    # numeric entries the UI can plot, and one table
    assert isinstance(md["campaign_queued_to_email_sent_pct"], dg.FloatMetadataValue)
    assert isinstance(md["email_sent_leads"], dg.IntMetadataValue)
    assert "| email_sent | 1 | 1 |" in md["funnel"].value

    # a week wide, the 30-day-old lead is still outside; the 20-day-old send too
    assert funnel(postgres)["dedupe_success_leads"].value == 4
    assert funnel(postgres)["email_sent_leads"].value == 1


def test_funnel_counts_each_lead_once_however_many_events(postgres, clean_db):
    with psycopg.connect(clean_db.admin_dsn, autocommit=True) as conn:
        lead = conn.execute("INSERT INTO leads (email) VALUES ('x@example.com') RETURNING id").fetchone()[0]
        for _ in range(3):  # a refresh or re-run writes its events again: not more leads
            record_event(conn, "email_replied", stage="email_replies", lead_id=str(lead))
    md = funnel(postgres)
    assert md["email_replied_leads"].value == 1 and md["email_replied_per_hour"].value == 1


def test_funnel_shows_its_upstream_and_refreshes_hourly():
    graph = defs.resolve_asset_graph()
    parents = graph.get(dg.AssetKey("pipeline_funnel")).parent_keys
    assert {dg.AssetKey(k) for k in ("verified_leads", "contactable_leads", "instantly_campaign_leads")} <= parents
    assert all(graph.has(key) for key in parents)
    schedule = defs.resolve_schedule_def("pipeline_funnel_schedule")
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert schedule.job_name == "pipeline_funnel_job" and schedule.cron_schedule == "0 * * * *"
    assert FunnelConfig().window_hours == 168
