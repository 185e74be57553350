"""Funnel and housekeeping views over the pipeline's tables."""

from datetime import timedelta

import dagster as dg

from ..db.resources import PostgresResource
from .funnel import Funnel, measure_funnel

# The assets whose tables the funnel reads: shown as its upstream in the lineage.
FUNNEL_UPSTREAM = ["deduped_leads", "verified_leads", "scored_leads", "contactable_leads", "daily_campaign_batch",
                   "instantly_campaign_leads", "email_replies", "call_outcomes"]


class FunnelConfig(dg.Config):
    window_hours: int = 168  # a week: enough leads for stable percentiles, bounded reads


def funnel_metadata(funnel: Funnel) -> dict[str, dg.MetadataValue]:
    """One numeric entry per figure (the UI plots each over materializations) and the table."""
    md: dict[str, dg.MetadataValue] = {}
    for here, after in zip(funnel.stages, funnel.stages[1:], strict=False):
        md[f"{here.stage}_leads"] = dg.MetadataValue.int(here.leads)
        md[f"{here.stage}_per_hour"] = dg.MetadataValue.int(here.last_hour)
        if here.conversion_pct is not None:
            md[f"{here.stage}_to_{after.stage}_pct"] = dg.MetadataValue.float(here.conversion_pct)
        if here.p50_s is not None:
            md[f"{here.stage}_to_{after.stage}_p50_s"] = dg.MetadataValue.float(here.p50_s)
            md[f"{here.stage}_to_{after.stage}_p95_s"] = dg.MetadataValue.float(here.p95_s or 0.0)
    last = funnel.stages[-1]
    md[f"{last.stage}_leads"] = dg.MetadataValue.int(last.leads)
    md[f"{last.stage}_per_hour"] = dg.MetadataValue.int(last.last_hour)
    for event, (count, rate) in funnel.errors.items():
        md[f"{event}_count"] = dg.MetadataValue.int(count)
        if rate is not None:
            md[f"{event}_rate_pct"] = dg.MetadataValue.float(rate)
    md |= {name: dg.MetadataValue.int(int(n)) for name, n in funnel.health.items()}
    md["window_hours"] = dg.MetadataValue.float(funnel.window.total_seconds() / 3600)
    md["funnel"] = dg.MetadataValue.md(funnel.markdown())
    return md


@dg.asset(
    deps=FUNNEL_UPSTREAM,
    group_name="observe",
    kinds={"postgres"},
    owners=["team:data-platform"],
)
def pipeline_funnel(context: dg.AssetExecutionContext, config: FunnelConfig,
                    postgres: PostgresResource) -> dg.MaterializeResult:
    """The lead funnel over the last week (upload received → deduplicated → e-mail verified →
    queued → sent → replied → consent → called → appointment → application): leads entering
    each stage, conversion to the next, p50/p95 time to the next, throughput in the last hour,
    error rates by event type and the backlog. Numeric metadata, so the UI plots each figure
    across materializations; refreshed hourly by its schedule."""
    with postgres.connection() as conn:
        funnel = measure_funnel(conn, window=timedelta(hours=config.window_hours))
    context.log.info("funnel: %s", {s.stage: s.leads for s in funnel.stages})
    return dg.MaterializeResult(metadata=funnel_metadata(funnel))


class PartitionMaintenanceConfig(dg.Config):
    months_ahead: int = 3  # months created before they start, so an insert never lands in the default
    retain_months: int = 13  # full months kept hot before this one; older months move to `archive`


@dg.asset(group_name="observe", kinds={"postgres"}, owners=["team:data-platform"])
def pipeline_events_partitions(context: dg.AssetExecutionContext, config: PartitionMaintenanceConfig,
                               postgres: PostgresResource) -> dg.MaterializeResult:
    """The monthly partitions of `pipeline_events`: creates the coming months, moves any row that
    landed in the default partition into its month, and archives months past retention into the
    `archive` schema (queryable, read-only, out of the hot table). Idempotent; daily."""
    with postgres.connection() as conn:
        done = conn.execute("SELECT pipeline_events_maintain(%s, %s)",
                            (config.months_ahead, config.retain_months)).fetchone()[0]
    if done["moved_from_default"]:
        context.log.warning("%d event(s) had landed in the default partition; moved to their months",
                            done["moved_from_default"])
    return dg.MaterializeResult(metadata={
        "created": dg.MetadataValue.int(len(done["created"])),
        "archived": dg.MetadataValue.int(len(done["archived"])),
        "moved_from_default": dg.MetadataValue.int(done["moved_from_default"]),
        "default_rows": dg.MetadataValue.int(done["default_rows"]),
        "partitions": dg.MetadataValue.int(done["partitions"]),
        "archived_total": dg.MetadataValue.int(done["archived_total"]),
        "oldest": dg.MetadataValue.text(done["oldest"] or ""),
        "newest": dg.MetadataValue.text(done["newest"] or ""),
        "changes": dg.MetadataValue.json({"created": done["created"], "archived": done["archived"]}),
    })


@dg.asset_check(asset=pipeline_events_partitions, blocking=False)
def pipeline_events_default_partition_empty(postgres: PostgresResource) -> dg.AssetCheckResult:
    """Rows in the default partition mean a month was missing when they arrived: maintenance
    fell behind (or a writer set a far-off time). Maintenance moves them; this says it happened."""
    with postgres.connection() as conn:
        rows, oldest, newest = conn.execute(
            "SELECT count(*), min(created_at), max(created_at) FROM pipeline_events_default").fetchone()
    return dg.AssetCheckResult(
        passed=rows == 0, severity=dg.AssetCheckSeverity.WARN,
        metadata={"default_rows": rows, "oldest": str(oldest or ""), "newest": str(newest or "")},
    )
