"""The observe domain's definitions."""

import dagster as dg

from .assets import pipeline_events_default_partition_empty, pipeline_events_partitions, pipeline_funnel
from .redrive import dlq_redrive_job, dlq_redrive_schedule
from .sensors import alert_conditions_sensor, run_failure_alert_sensor, run_recovery_alert_sensor

pipeline_funnel_job = dg.define_asset_job("pipeline_funnel_job", selection=dg.AssetSelection.assets(pipeline_funnel))

# On by default: a read-only summary over bounded windows, cheap to refresh; hourly, so the UI
# plots one point per hour.
pipeline_funnel_schedule = dg.ScheduleDefinition(
    name="pipeline_funnel_schedule",
    job=pipeline_funnel_job,
    cron_schedule="0 * * * *",
    execution_timezone="America/Los_Angeles",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)

pipeline_events_partitions_job = dg.define_asset_job(
    "pipeline_events_partitions_job", selection=dg.AssetSelection.assets(pipeline_events_partitions))

# On by default: the coming months must exist before their first event; idempotent, so daily
# runs (and a missed one) are harmless.
pipeline_events_partitions_schedule = dg.ScheduleDefinition(
    name="pipeline_events_partitions_schedule",
    job=pipeline_events_partitions_job,
    cron_schedule="15 2 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)

defs = dg.Definitions(
    assets=[pipeline_funnel, pipeline_events_partitions],
    asset_checks=[pipeline_events_default_partition_empty],
    jobs=[pipeline_funnel_job, pipeline_events_partitions_job, dlq_redrive_job],
    schedules=[pipeline_funnel_schedule, pipeline_events_partitions_schedule, dlq_redrive_schedule],
    sensors=[alert_conditions_sensor, run_failure_alert_sensor, run_recovery_alert_sensor],
)
