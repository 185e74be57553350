"""Keeping verification running: a job for `verified_leads` and a sensor that starts it when leads are due."""

import dagster as dg

from equity_assets.db.resources import PostgresResource
from equity_assets.verify.assets import VerifyConfig, verified_leads
from equity_assets.verify.store import count_due_leads

verified_leads_job = dg.define_asset_job(
    "verified_leads_job",
    # Verification, then what consumes it directly (scored_leads: score + assignment), so one run
    # leaves verified leads queued. Selected through the graph: verify does not import campaign.
    selection=dg.AssetSelection.assets(verified_leads).downstream(depth=1),  # checks come along
    description="Verify due leads, then score and assign them.",
)

#: Runs still going (or about to): while one exists the sensor does not pile up another.
_IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


@dg.sensor(
    job=verified_leads_job,
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Every 5 minutes: request a verified_leads run when leads are due and none is running.",
)
def verification_due_sensor(context: dg.SensorEvaluationContext, postgres: PostgresResource) -> dg.SensorResult | dg.SkipReason:
    """Due = never verified, or verified longer ago than the default `max_age_days`.

    The run key is a tick counter kept in the cursor: unique per request, so it never blocks a
    later run (a key derived from the work itself would repeat and be skipped forever). A run in
    flight makes the tick skip instead, so runs do not pile up.
    """
    in_flight = context.instance.get_runs_count(
        dg.RunsFilter(job_name=verified_leads_job.name, statuses=_IN_FLIGHT)
    )
    if in_flight:
        return dg.SkipReason(f"{in_flight} verified_leads run(s) in flight")
    defaults = VerifyConfig()
    with postgres.connection() as conn:
        due = count_due_leads(
            conn, max_age_days=defaults.max_age_days, backoff_minutes=defaults.dlq_backoff_minutes,
            cap=10_000,  # enough to know there is work; the run decides how much it takes
        )
    if due == 0:
        return dg.SkipReason("no leads due for verification")
    tick = int(context.cursor or 0) + 1
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=f"verify-tick-{tick}", tags={"verify/due_leads": str(due)})],
        cursor=str(tick),
    )
