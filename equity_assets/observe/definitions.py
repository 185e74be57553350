"""The observe domain's definitions."""

import dagster as dg

from .assets import pipeline_funnel
from .redrive import dlq_redrive_job, dlq_redrive_schedule

pipeline_funnel_job = dg.define_asset_job("pipeline_funnel_job", selection=dg.AssetSelection.assets(pipeline_funnel))

# On by default: a read-only summary, cheap to refresh, so the UI's numbers are never old.
pipeline_funnel_schedule = dg.ScheduleDefinition(
    name="pipeline_funnel_schedule",
    job=pipeline_funnel_job,
    cron_schedule="*/15 * * * *",
    execution_timezone="America/Los_Angeles",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)

defs = dg.Definitions(assets=[pipeline_funnel], jobs=[pipeline_funnel_job, dlq_redrive_job],
                      schedules=[pipeline_funnel_schedule, dlq_redrive_schedule])
