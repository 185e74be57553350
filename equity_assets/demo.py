"""`equity demo`: run the pipeline end to end on the embedded defaults and print the funnel."""

from __future__ import annotations

import dagster as dg

from .definitions import defs
from .db.resources import PostgresResource


def print_funnel(postgres: PostgresResource) -> None:
    with postgres.connection() as conn:
        rows = conn.execute(
            "SELECT event_type, coalesce(sum(count), count(*)) FROM pipeline_events GROUP BY 1 ORDER BY min(id)"
        ).fetchall()
        leads = conn.execute("SELECT campaign_status::text, count(*) FROM leads GROUP BY 1 ORDER BY 1").fetchall()
    print("funnel (pipeline_events):")
    for event_type, n in rows or [("(no events yet)", 0)]:
        print(f"  {event_type:<24} {n:>8}")
    print("leads by status:")
    for status, n in leads or [("(no leads yet)", 0)]:
        print(f"  {status:<24} {n:>8}")


def run_demo() -> int:
    """Materialize every asset once in the persistent Dagster instance, then print what happened."""
    with dg.DagsterInstance.get() as instance:
        job = defs.resolve_implicit_global_asset_job_def()
        result = job.execute_in_process(instance=instance)
        print(f"materialized {len(result.get_asset_materialization_events())} asset(s), run {result.run_id}")
    postgres = PostgresResource()
    try:
        print_funnel(postgres)
    finally:
        postgres.close()
    return 0 if result.success else 1
