"""The verify domain's Definitions: `verified_leads`, its checks, job and sensor.

Resources it needs (wired at the root): `postgres`, `melissa`, `batchdata`.
"""

import dagster as dg

from equity_assets.verify.assets import verified_leads
from equity_assets.verify.checks import (
    suppressed_channels_are_not_usable,
    verification_dead_letters,
    verified_leads_match_schema,
)
from equity_assets.verify.sensors import verification_due_sensor, verified_leads_job

defs = dg.Definitions(
    assets=[verified_leads],
    asset_checks=[
        suppressed_channels_are_not_usable,
        verification_dead_letters,
        verified_leads_match_schema,
    ],
    jobs=[verified_leads_job],
    sensors=[verification_due_sensor],
)
