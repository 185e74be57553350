"""The ingest domain's definitions."""

import dagster as dg

from .assets import deduped_leads, lead_duplicate_candidates, staged_leads
from .checks import (
    lead_address_matches_keys,
    no_duplicate_lead_keys,
    staged_rows_accounted_for,
    staged_rows_match_schema,
    upload_leads_match_schema,
)
from .sensors import ingest_upload_job, upload_sensor

defs = dg.Definitions(
    assets=[staged_leads, deduped_leads, lead_duplicate_candidates],
    asset_checks=[no_duplicate_lead_keys, staged_rows_accounted_for, staged_rows_match_schema, upload_leads_match_schema,
                  lead_address_matches_keys],
    jobs=[ingest_upload_job],
    sensors=[upload_sensor],
)
