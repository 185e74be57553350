"""Funnel and health views over the pipeline's tables."""

import dagster as dg

from ..db.resources import PostgresResource

# Leads per stage, each counted once, from the tables that hold the stage's truth (not events:
# a re-run or a refresh writes events again, a lead is in a stage or not). In funnel order.
FUNNEL_SQL = """
SELECT
    (SELECT count(*) FROM leads)                                                   AS ingested,
    (SELECT count(*) FROM leads WHERE email_verified)                              AS email_verified,
    (SELECT count(*) FROM leads WHERE assigned_broker_id IS NOT NULL)              AS assigned,
    (SELECT count(*) FROM contactable_leads)                                       AS contactable,
    (SELECT count(*) FROM campaign_sends)                                          AS in_batch,
    (SELECT count(*) FROM campaign_sends WHERE status = 'pushed')                  AS email_sent,
    (SELECT count(DISTINCT lead_id) FROM email_replies)                            AS email_replied,
    (SELECT count(DISTINCT lead_id) FROM calls)                                    AS called
"""
FUNNEL_STAGES = ("ingested", "email_verified", "assigned", "contactable", "in_batch", "email_sent",
                 "email_replied", "called")

HEALTH_SQL = """
SELECT (SELECT count(*) FROM campaign_sends WHERE status = 'queued')  AS sends_queued,
       (SELECT count(*) FROM campaign_sends WHERE status = 'failed')  AS sends_failed,
       (SELECT count(*) FROM pipeline_dlq WHERE status = 'pending')   AS dlq_pending
"""

# How long each stage takes, from the events the stages write (durations only, not counts).
STAGE_P95_SQL = """
SELECT stage, percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms)
FROM pipeline_events WHERE stage IS NOT NULL AND duration_ms IS NOT NULL
GROUP BY stage
"""

# The assets whose tables the funnel reads: shown as its upstream in the lineage.
FUNNEL_UPSTREAM = ["deduped_leads", "verified_leads", "scored_leads", "contactable_leads", "daily_campaign_batch",
                   "instantly_campaign_leads", "email_replies", "call_outcomes"]


@dg.asset(
    deps=FUNNEL_UPSTREAM,
    group_name="observe",
    kinds={"postgres"},
    owners=["team:data-platform"],
)
def pipeline_funnel(context: dg.AssetExecutionContext, postgres: PostgresResource) -> dg.MaterializeResult:
    """How many leads stand at each stage (ingested → verified → assigned → contactable → in a
    batch → emailed → replied → called), the backlog (queued and failed sends, pending dead
    letters) and each stage's p95 duration. Refreshed every 15 minutes by its schedule."""
    with postgres.connection() as conn:
        funnel = dict(zip(FUNNEL_STAGES, conn.execute(FUNNEL_SQL).fetchone(), strict=True))
        queued, failed, dlq_pending = conn.execute(HEALTH_SQL).fetchone()
        p95 = {stage: float(ms) for stage, ms in conn.execute(STAGE_P95_SQL)}
    metadata: dict[str, dg.MetadataValue | int | float] = {f"{stage}_leads": int(n) for stage, n in funnel.items()}
    metadata |= {"sends_queued": queued, "sends_failed": failed, "dlq_pending": dlq_pending}
    metadata |= {f"{stage}_p95_ms": ms for stage, ms in sorted(p95.items())}
    metadata["funnel"] = dg.MetadataValue.json(funnel)
    context.log.info("funnel: %s", funnel)
    return dg.MaterializeResult(metadata=metadata)
