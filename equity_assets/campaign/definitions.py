"""The campaign domain's definitions (resource keys: `postgres`, `instantly`)."""

import dagster as dg

from .assets import campaign_day, contactable_leads, scored_leads
from .checks import (
    contactable_leads_match_schema,
    no_stale_queued_sends,
    queued_leads_are_assigned_and_contactable,
    scored_leads_match_schema,
)
from .schedules import (
    contactable_leads_job,
    contactable_leads_schedule,
    daily_campaign_job,
    daily_campaign_schedule,
    scored_leads_job,
)

defs = dg.Definitions(
    assets=[scored_leads, contactable_leads, campaign_day],
    asset_checks=[
        no_stale_queued_sends,
        queued_leads_are_assigned_and_contactable,
        scored_leads_match_schema,
        contactable_leads_match_schema,
    ],
    jobs=[scored_leads_job, contactable_leads_job, daily_campaign_job],
    schedules=[contactable_leads_schedule, daily_campaign_schedule],
)
