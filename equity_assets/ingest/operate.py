"""What a data engineer runs by hand: ingest one file without the gateway, and trace an upload's
rows to the leads they became (or why they did not)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import dagster as dg

from ..db.resources import PostgresResource
from .staging import STAGE


def register_file(conn, path: Path, source: str) -> str:
    """An `uploads` row for a local file (the stored path is the file itself: keep it in place,
    a crash recovery stages it again from there)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return str(conn.execute(
        """INSERT INTO uploads (content_sha256, source, filename, storage_path, byte_size)
           VALUES (%s, %s, %s, %s, %s) RETURNING id""",
        (digest.hexdigest(), source, path.name, str(path.resolve()), path.stat().st_size),
    ).fetchone()[0])


def ingest_file(postgres: PostgresResource, path: str | Path, source: str = "propstream") -> dict[str, Any]:
    """Record an upload for `path` and run `staged_leads` + `deduped_leads` (and the probable
    duplicate listing) for it in-process, with the asset checks the upload job runs (a blocking
    one that fails stops the assets after it, as in Dagster)."""
    from .assets import deduped_leads, lead_duplicate_candidates, staged_leads
    from .definitions import defs
    from .partitions import uploads_partitions

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    with postgres.connection() as conn:
        upload_id = register_file(conn, path, source)
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(uploads_partitions.name, [upload_id])
    result = dg.materialize([staged_leads, deduped_leads, lead_duplicate_candidates, *defs.asset_checks],
                            partition_key=upload_id, instance=instance, resources={"postgres": postgres},
                            raise_on_error=False)
    summary: dict[str, Any] = {"upload_id": upload_id, "success": result.success}
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    if not result.success:
        with postgres.connection() as conn:
            summary["error"] = conn.execute("SELECT error FROM uploads WHERE id = %s", (upload_id,)).fetchone()[0]
        summary["failed_checks"] = sorted(name for name, passed in checks.items() if not passed)
        return summary
    staged = _metadata(result, "staged_leads")
    merged = _metadata(result, "deduped_leads")
    summary.update({
        "file_rows": staged["file_rows"], "staged": staged["staged_rows"], "rejected": staged["rejected_rows"],
        "blank_rows_skipped": staged["blank_rows_skipped"], "dropped_values": staged["dropped_values"],
        "ignored_headers": staged["ignored_headers"],
        "leads_inserted": merged["inserted"], "leads_updated": merged["updated"],
        "unchanged": merged["unchanged"], "merged_in_batch": merged["merged_in_batch"],
        "key_conflicts": merged["conflicts"], "address_variants_resolved": merged["address_variants_resolved"],
        "duplicate_candidates": _metadata(result, "lead_duplicate_candidates")["new_candidates"],
        "checks": checks, "checks_passed": all(checks.values()),
        "seconds": round(staged["duration_s"] + merged["duration_s"], 3),
    })
    return summary


def _metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict[str, Any]:
    return {k: v.value for k, v in result.asset_materializations_for_node(asset)[0].metadata.items()}


MERGE_REASON = {"new": "became a new lead", "in_batch": "the same property as an earlier row of this file",
                "addr_hash": "matched an existing lead by its address"}
MATCHED_KEY = {"mak": "mak", "apn": "apn", "addr_hash": "address", "in_batch": "in_batch", "new": "new"}

TRACE_SQL = """
WITH rows AS (
    SELECT row_number FROM lead_sources WHERE upload_id = %(u)s
    UNION SELECT row_number FROM pipeline_dlq
          WHERE stage = %(stage)s AND source_ref = %(u)s::text AND row_number IS NOT NULL
    UNION SELECT row_number FROM ingest_dropped_values WHERE upload_id = %(u)s
)
SELECT r.row_number, ls.lead_id, ls.matched_on,
       (SELECT string_agg(d.reason, '; ' ORDER BY d.id) FROM pipeline_dlq d
         WHERE d.stage = %(stage)s AND d.source_ref = %(u)s::text AND d.row_number = r.row_number) AS rejected,
       (SELECT jsonb_agg(jsonb_build_object('column', v.column_name, 'value', v.value, 'reason', v.reason)
                         ORDER BY v.id)
          FROM ingest_dropped_values v WHERE v.upload_id = %(u)s AND v.row_number = r.row_number) AS dropped,
       (SELECT c.matched_on FROM lead_key_conflicts c
         WHERE c.upload_id = %(u)s AND c.row_number = r.row_number AND c.key_name = 'address' LIMIT 1) AS conflict
FROM rows r LEFT JOIN lead_sources ls ON ls.upload_id = %(u)s AND ls.row_number = r.row_number
WHERE %(row)s::int IS NULL OR r.row_number = %(row)s::int
ORDER BY r.row_number"""


def trace_upload(conn, upload_id: str, row: int | None = None) -> list[dict[str, Any]]:
    """One object per source row of the upload: the lead it became and by which key, or why not.

    `status` is `merged` (into a new or existing lead), `conflict` (matched a lead by MAK/APN whose
    address is another property: recorded, nothing applied), `rejected` or `skipped` (blank row).
    """
    if conn.execute("SELECT 1 FROM uploads WHERE id = %s", (upload_id,)).fetchone() is None:
        raise LookupError(f"no upload {upload_id}")
    out = []
    for number, lead_id, matched_on, rejected, dropped, conflict in conn.execute(
            TRACE_SQL, {"u": upload_id, "stage": STAGE, "row": row}):
        dropped = dropped or []
        skipped = [d for d in dropped if d["column"] == "*"]
        entry: dict[str, Any] = {"row": number, "lead_id": str(lead_id) if lead_id else None,
                                 "matched_key": MATCHED_KEY.get(matched_on), "status": None, "reason": None}
        if rejected:
            entry.update(status="rejected", reason=rejected)
        elif skipped:
            entry.update(status="skipped", reason=skipped[0]["reason"])
        elif conflict:
            entry.update(status="conflict", reason=f"matched by {conflict}, but the address is "
                                                   "another property's: recorded in lead_key_conflicts, not applied")
        else:
            entry.update(status="merged", reason=MERGE_REASON.get(matched_on, f"matched by {entry['matched_key']}"))
        if dropped and not skipped:
            entry["dropped_values"] = dropped
        out.append(entry)
    return out
