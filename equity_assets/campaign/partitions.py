"""Partitions of the campaign domain, defined once and imported everywhere."""

import dagster as dg

from ..devenv import campaign_start

CAMPAIGN_TIMEZONE = "America/Los_Angeles"

# One partition per weekday, keyed by its date; the window opens at 06:00 PT. end_offset=1 makes
# the day's own partition exist at its 06:00 tick, so the Monday run sends Monday's batch.
# The start is the first campaign day (EQUITY_CAMPAIGN_START, by default the day the checkout was
# set up): every weekday from it on is a partition, shown as "missing" in the UI until it is sent.
campaign_days = dg.TimeWindowPartitionsDefinition(
    cron_schedule="0 6 * * 1-5",
    timezone=CAMPAIGN_TIMEZONE,
    fmt="%Y-%m-%d",
    start=campaign_start(),
    end_offset=1,
)
