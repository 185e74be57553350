"""Invariants of the ingest tables, checked in SQL after each merge."""

import dagster as dg

from ..db.resources import PostgresResource
from ..observe.validation import check_table_sample
from .assets import deduped_leads, staged_leads
from .schemas import StagedRowsTable, UploadLeadsTable

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


_STAGED_SAMPLE = """
SELECT row_number, property_address, property_state, property_zip, email, phone, ltv, estimated_value,
       loan_balance, addr_hash
FROM leads_staging WHERE upload_id = %(upload)s::uuid ORDER BY row_number LIMIT %(limit)s
"""

_UPLOAD_LEADS_SAMPLE = """
SELECT l.id::text AS id, l.mak, l.property_state, l.property_zip, l.email, l.phone, l.addr_hash, l.apn
FROM leads l
WHERE l.id IN (SELECT lead_id FROM lead_sources WHERE upload_id = %(upload)s::uuid)
ORDER BY l.id LIMIT %(limit)s
"""


@dg.asset_check(asset=staged_leads, blocking=True,
                description="A sample of the upload's staged rows matches StagedRowsTable (formats, ranges).")
def staged_rows_match_schema(context: dg.AssetCheckExecutionContext, postgres: PostgresResource) -> dg.AssetCheckResult:
    """Read back what the COPY wrote: a parser fault must not reach `leads`."""
    with postgres.connection() as conn:
        return check_table_sample(conn, StagedRowsTable, _STAGED_SAMPLE, {"upload": context.partition_key},
                                  key="row_number")


@dg.asset_check(asset=deduped_leads, blocking=True,
                description="A sample of the leads this upload became matches UploadLeadsTable.")
def upload_leads_match_schema(context: dg.AssetCheckExecutionContext, postgres: PostgresResource) -> dg.AssetCheckResult:
    """Read back the merge's leads: formats hold and every lead keeps a dedupe key."""
    with postgres.connection() as conn:
        return check_table_sample(conn, UploadLeadsTable, _UPLOAD_LEADS_SAMPLE, {"upload": context.partition_key},
                                  key="id")
