"""Invariants of the ingest tables, checked in SQL after each merge."""

import dagster as dg

from ..db.resources import PostgresResource
from ..observe.validation import check_table_sample
from .assets import deduped_leads, staged_leads
from .schemas import StagedRowsTable, UploadLeadsTable
from .staging import STAGE

# Broker-created leads are outside pipeline identity: their keys are neither unique nor matched.
# Surplus rows per key (count - distinct), summed over the keys held more than once: a hash
# aggregate, where count(DISTINCT) sorted every key of `leads` (~5 s → ~2.5 s at 850,000 leads).
DUPLICATE_KEYS_SQL = """
SELECT 'mak' AS key, coalesce(sum(n - 1), 0)::bigint AS dupes FROM (
    SELECT count(*) AS n FROM leads WHERE mak IS NOT NULL AND NOT broker_created GROUP BY mak HAVING count(*) > 1) d
UNION ALL
SELECT 'apn', coalesce(sum(n - 1), 0)::bigint FROM (
    SELECT count(*) AS n FROM leads
     WHERE apn IS NOT NULL AND property_state IS NOT NULL AND county IS NOT NULL AND NOT broker_created
     GROUP BY property_state, county, apn HAVING count(*) > 1) d
UNION ALL
SELECT 'addr_hash', coalesce(sum(n - 1), 0)::bigint FROM (
    SELECT count(*) AS n FROM leads WHERE addr_hash IS NOT NULL AND NOT broker_created
     GROUP BY addr_hash HAVING count(*) > 1) d
"""


@dg.asset_check(asset=deduped_leads, description="No two leads share a MAK, an (state, county, APN) or an addr_hash.")
def no_duplicate_lead_keys(postgres: PostgresResource) -> dg.AssetCheckResult:
    with postgres.connection() as conn:
        dupes = dict(conn.execute(DUPLICATE_KEYS_SQL).fetchall())
    return dg.AssetCheckResult(passed=not any(dupes.values()), metadata={f"{k}_duplicates": v for k, v in dupes.items()})


LINEAGE_SQL = """
SELECT count(*),
       coalesce(sum(u.file_rows), 0)::bigint,
       coalesce(sum(a.lineage + a.rejected), 0)::bigint,
       coalesce(sum(a.orphaned), 0)::bigint,
       count(*) FILTER (WHERE u.file_rows IS DISTINCT FROM a.lineage + a.rejected)
FROM uploads u
CROSS JOIN LATERAL (
    SELECT (SELECT count(*) FROM lead_sources ls WHERE ls.upload_id = u.id) AS lineage,
           (SELECT count(DISTINCT d.row_number) FROM pipeline_dlq d
             WHERE d.stage = %(stage)s AND d.source_ref = u.id::text AND d.row_number IS NOT NULL) AS rejected,
           (SELECT count(*) FROM lead_sources ls
             WHERE ls.upload_id = u.id AND NOT EXISTS (SELECT 1 FROM leads l WHERE l.id = ls.lead_id)) AS orphaned
) a
WHERE (%(u)s::uuid IS NULL AND u.status = 'merged') OR u.id = %(u)s::uuid"""


def lineage_accounts(conn, upload_id: str | None) -> dg.AssetCheckResult:
    """One upload's (or, without one, every merged upload's) rows accounted for."""
    # Compared with the file's row count, never with staging: staging is UNLOGGED and may have
    # been emptied by a crash, and "0 staged, 0 merged" must not pass.
    uploads, file_rows, accounted, orphaned, short = conn.execute(
        LINEAGE_SQL, {"stage": STAGE, "u": upload_id}).fetchone()
    return dg.AssetCheckResult(
        passed=(uploads > 0 or upload_id is None) and short == 0 and orphaned == 0,
        metadata={"file_rows": file_rows, "lineage_plus_rejected": accounted,
                  "uploads_not_adding_up": short, "lineage_to_missing_lead": orphaned},
    )


@dg.asset_check(asset=deduped_leads,
                description="Lineage rows + rejected rows = data rows in the file, and every lineage row points at a lead.")
def staged_rows_accounted_for(context: dg.AssetCheckExecutionContext, postgres: PostgresResource) -> dg.AssetCheckResult:
    with postgres.connection() as conn:
        return lineage_accounts(conn, context.partition_key if context.has_partition_key else None)


_STAGED_SAMPLE = """
SELECT row_number, property_address, property_state, property_zip, email, phone, ltv, estimated_value,
       loan_balance, addr_hash
FROM leads_staging WHERE upload_id = %(upload)s::uuid ORDER BY row_number LIMIT %(limit)s
"""

# The leads the upload wrote: a row recorded as a key conflict applied nothing to the lead its
# lineage points at, so that lead (perhaps from an older parser) is not this upload's to answer for.
_UPLOAD_LEADS_SAMPLE = """
SELECT l.id::text AS id, l.mak, l.property_state, l.property_zip, l.email, l.phone, l.addr_hash, l.apn
FROM leads l
WHERE l.id IN (SELECT ls.lead_id FROM lead_sources ls
               WHERE ls.upload_id = %(upload)s::uuid
                 AND NOT EXISTS (SELECT 1 FROM lead_key_conflicts c
                                 WHERE c.upload_id = ls.upload_id AND c.row_number = ls.row_number))
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


# A lead's addr_hash is derived from its stored address (addr_std, addr_city, state, ZIP); a key
# that no longer describes the stored address would let the next upload of that address become a
# second lead. Leads without a standardized address (created outside ingestion) are not judged.
ADDRESS_KEY_AGREES_SQL = """
SELECT count(*) FILTER (WHERE addr_std IS NOT NULL),
       count(*) FILTER (WHERE addr_std IS NOT NULL AND addr_hash IS DISTINCT FROM
                        lead_address_hash(addr_std, addr_city, property_state, property_zip))
FROM leads WHERE NOT broker_created"""


@dg.asset_check(asset=deduped_leads,
                description="Every lead's addr_hash is the key of its stored (standardized) address.")
def lead_address_matches_keys(postgres: PostgresResource) -> dg.AssetCheckResult:
    with postgres.connection() as conn:
        judged, disagree = conn.execute(ADDRESS_KEY_AGREES_SQL).fetchone()
    return dg.AssetCheckResult(passed=disagree == 0,
                               metadata={"leads_with_standard_address": judged, "key_disagrees": disagree})
