"""The voice domain's definitions (resource keys: `postgres`, `vapi`)."""

import dagster as dg

from .assets import call_outcomes, voice_calls
from .checks import voice_checks
from .sensors import call_outcomes_job, vapi_webhook_sensor, voice_calls_job, voice_calls_schedule

defs = dg.Definitions(
    assets=[voice_calls, call_outcomes],
    asset_checks=voice_checks,
    jobs=[voice_calls_job, call_outcomes_job],
    sensors=[vapi_webhook_sensor],
    schedules=[voice_calls_schedule],
)
