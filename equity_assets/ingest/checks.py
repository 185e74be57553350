"""Invariants of the ingest tables, checked in SQL after each merge."""

import dagster as dg

from ..db.resources import PostgresResource
from .assets import deduped_leads

DUPLICATE_KEYS_SQL = """
SELECT 'mak' AS key, count(*) - count(DISTINCT mak) AS dupes FROM leads WHERE mak IS NOT NULL
UNION ALL
SELECT 'apn', count(*) - count(DISTINCT (property_state, county, apn)) FROM leads
 WHERE apn IS NOT NULL AND property_state IS NOT NULL AND county IS NOT NULL
UNION ALL
SELECT 'addr_hash', count(*) - count(DISTINCT addr_hash) FROM leads WHERE addr_hash IS NOT NULL
"""


@dg.asset_check(asset=deduped_leads, description="No two leads share a MAK, an (state, county, APN) or an addr_hash.")
def no_duplicate_lead_keys(postgres: PostgresResource) -> dg.AssetCheckResult:
    with postgres.connection() as conn:
        dupes = dict(conn.execute(DUPLICATE_KEYS_SQL).fetchall())
    return dg.AssetCheckResult(passed=not any(dupes.values()), metadata={f"{k}_duplicates": v for k, v in dupes.items()})


@dg.asset_check(asset=deduped_leads, description="Every staged row of the upload has lineage to a lead that exists.")
def staged_rows_accounted_for(context: dg.AssetCheckExecutionContext, postgres: PostgresResource) -> dg.AssetCheckResult:
    upload_id = context.partition_key if context.has_partition_key else None
    with postgres.connection() as conn:
        staged, orphaned, missing = conn.execute(
            """SELECT count(*),
                      count(*) FILTER (WHERE ls.row_number IS NOT NULL AND l.id IS NULL),
                      count(*) FILTER (WHERE ls.row_number IS NULL)
               FROM leads_staging s
               LEFT JOIN lead_sources ls ON ls.upload_id = s.upload_id AND ls.row_number = s.row_number
               LEFT JOIN leads l ON l.id = ls.lead_id
               WHERE %(u)s::uuid IS NULL OR s.upload_id = %(u)s::uuid""",
            {"u": upload_id},
        ).fetchone()
    return dg.AssetCheckResult(
        passed=orphaned == 0 and missing == 0,
        metadata={"staged_rows": staged, "without_lineage": missing, "lineage_to_missing_lead": orphaned},
    )
