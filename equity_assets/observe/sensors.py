"""Alert sensors: measured conditions every five minutes, and every run's failure or recovery."""

import dagster as dg

from ..db.resources import PostgresResource
from .alerts import AlertNotDelivered, AlertSink, measure_conditions

#: Assets whose failed run has its own alert (and runbook entry) instead of the generic one.
NAMED_RUN_ALERTS = {
    "contactable_leads": "contactable_refresh_failed",
    "daily_campaign_batch": "campaign_batch_failed",
    "instantly_campaign_leads": "campaign_batch_failed",
}


def run_alert_key(run: dg.DagsterRun) -> str:
    """A run's alert: named after what it materializes when that has its own, else after its job."""
    assets = {key.to_user_string() for key in run.asset_selection or ()}
    for asset, key in NAMED_RUN_ALERTS.items():
        if asset in assets:
            return key
    return f"run_failed:{run.job_name}"


@dg.sensor(minimum_interval_seconds=300, default_status=dg.DefaultSensorStatus.RUNNING)
def alert_conditions_sensor(context: dg.SensorEvaluationContext, postgres: PostgresResource,
                            alerts: AlertSink) -> dg.SkipReason:
    """Measures each alert condition (signature failures, dead-letter depth, failed sends,
    duplicate uploads, a stale contactable set, events without a partition) and notifies
    through the alert sink: once when it starts, once when it clears."""
    sent, unsent = [], []
    with postgres.connection() as conn:
        conditions = measure_conditions(conn, alerts.thresholds)
        for condition in conditions:
            try:
                if alerts.apply(conn, condition):
                    sent.append(condition.key)
            except AlertNotDelivered as exc:  # its state is unchanged: the next tick retries it
                context.log.error("alert %s not delivered: %s", condition.key, exc)
                unsent.append(condition.key)
    firing = [c.key for c in conditions if c.firing]
    return dg.SkipReason(f"firing: {', '.join(firing) or 'none'}; notified: {', '.join(sent) or 'none'}"
                         + (f"; not delivered: {', '.join(unsent)}" if unsent else ""))


@dg.run_failure_sensor(default_status=dg.DefaultSensorStatus.RUNNING)
def run_failure_alert_sensor(context: dg.RunFailureSensorContext, postgres: PostgresResource,
                             alerts: AlertSink) -> None:
    """Any failed run: one alert per job (or per named asset), repeated only after its window."""
    run = context.dagster_run
    error = context.failure_event.message or "the run failed"
    with postgres.connection() as conn:
        alerts.fire(conn, run_alert_key(run), f"run {run.run_id} of {run.job_name} failed: {error[:300]}")


@dg.run_status_sensor(run_status=dg.DagsterRunStatus.SUCCESS, default_status=dg.DefaultSensorStatus.RUNNING)
def run_recovery_alert_sensor(context: dg.RunStatusSensorContext, postgres: PostgresResource,
                              alerts: AlertSink) -> None:
    """A later successful run of the same job (or asset) resolves its failure alert."""
    run = context.dagster_run
    with postgres.connection() as conn:
        alerts.clear(conn, run_alert_key(run), f"run {run.run_id} of {run.job_name} succeeded")
