"""Partitions of the campaign domain, defined once and imported everywhere."""

import dagster as dg

CAMPAIGN_TIMEZONE = "America/Los_Angeles"

# One partition per weekday, keyed by its date; the window opens at 06:00 PT. end_offset=1 makes
# the day's own partition exist at its 06:00 tick, so the Monday run sends Monday's batch.
# The start is the go-live week: every weekday after it shows up as "missing" until sent.
campaign_days = dg.TimeWindowPartitionsDefinition(
    cron_schedule="0 6 * * 1-5",
    timezone=CAMPAIGN_TIMEZONE,
    fmt="%Y-%m-%d",
    start="2026-03-02",
    end_offset=1,
)
