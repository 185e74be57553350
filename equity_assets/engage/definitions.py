"""The engage domain's definitions (resource key: `postgres`)."""

import dagster as dg

from .assets import email_replies
from .checks import engage_checks
from .sensors import email_replies_job, instantly_webhook_sensor

defs = dg.Definitions(
    assets=[email_replies],
    asset_checks=engage_checks,
    jobs=[email_replies_job],
    sensors=[instantly_webhook_sensor],
)
