"""Funnel and health views over `pipeline_events`."""

import dagster as dg

from ..db.resources import PostgresResource
from .events import FUNNEL

FUNNEL_SQL = """
SELECT event_type,
       count(*)                          AS events,
       coalesce(sum(count), count(*))    AS items,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms) AS p95_ms
FROM pipeline_events
GROUP BY event_type
"""


@dg.asset(
    group_name="observe",
    kinds={"postgres"},
    owners=["team:data-platform"],
    automation_condition=dg.AutomationCondition.on_cron("0 * * * *"),
)
def pipeline_funnel(context: dg.AssetExecutionContext, postgres: PostgresResource) -> dg.MaterializeResult:
    """Funnel counts and stage durations from `pipeline_events`, plus DLQ depth, for the UI to plot."""
    with postgres.connection() as conn:
        rows = {r[0]: r[1:] for r in conn.execute(FUNNEL_SQL).fetchall()}
        dlq_pending = conn.execute("SELECT count(*) FROM pipeline_dlq WHERE status = 'pending'").fetchone()[0]
        leads = conn.execute("SELECT count(*) FROM leads").fetchone()[0]
    metadata: dict[str, dg.MetadataValue | int | float] = {
        "leads": leads,
        "dlq_pending": dlq_pending,
    }
    for stage in FUNNEL:
        events, items, p95 = rows.get(stage, (0, 0, None))
        metadata[f"{stage}_items"] = int(items or 0)
        if p95 is not None:
            metadata[f"{stage}_p95_ms"] = float(p95)
    context.log.info("funnel: %s", {str(s): metadata[f"{s}_items"] for s in FUNNEL})
    return dg.MaterializeResult(metadata=metadata)

