"""The campaign domain's definitions (resource keys: `postgres`, `instantly`)."""

import dagster as dg

from .assets import campaign_day, contactable_leads
from .checks import no_stale_queued_sends
from .schedules import (
    contactable_leads_job,
    contactable_leads_schedule,
    daily_campaign_job,
    daily_campaign_schedule,
)

defs = dg.Definitions(
    assets=[contactable_leads, campaign_day],
    asset_checks=[no_stale_queued_sends],
    jobs=[contactable_leads_job, daily_campaign_job],
    schedules=[contactable_leads_schedule, daily_campaign_schedule],
)
