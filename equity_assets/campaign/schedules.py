"""Campaign jobs and their schedules: 05:30 PT daily, and 06:00 PT Monday to Friday."""

import dagster as dg

from .assets import campaign_day, contactable_leads, scored_leads
from .checks import no_stale_queued_sends
from .partitions import CAMPAIGN_TIMEZONE

scored_leads_job = dg.define_asset_job(
    "scored_leads_job",
    selection=dg.AssetSelection.assets(scored_leads),  # its check comes along
    description="Re-score verified leads and assign waiting ones to brokers (no vendor calls).",
)

contactable_leads_job = dg.define_asset_job(
    "contactable_leads_job",
    selection=dg.AssetSelection.assets(contactable_leads) | dg.AssetSelection.checks(no_stale_queued_sends),
    description="Refresh the contactable set; flag sends of earlier days that never left.",
)

# The batch, its blocking checks, then the push (one step): partitions come from the assets.
daily_campaign_job = dg.define_asset_job(
    "daily_campaign_job",
    selection=dg.AssetSelection.assets(campaign_day),
    description="Select, check and push one weekday's campaign batch (or a range, oldest first).",
)

contactable_leads_schedule = dg.ScheduleDefinition(
    name="contactable_leads_schedule",
    job=contactable_leads_job,
    cron_schedule="30 5 * * *",
    execution_timezone=CAMPAIGN_TIMEZONE,
    default_status=dg.DefaultScheduleStatus.RUNNING,
)

# Cron and timezone come from the partitions (0 6 * * 1-5, America/Los_Angeles): each weekday
# tick requests that day's partition with run_key = the date, so a tick never sends twice.
daily_campaign_schedule = dg.build_schedule_from_partitioned_job(
    daily_campaign_job,
    name="daily_campaign_schedule",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
