"""Ingestion: a signed upload becomes staged rows, then de-duplicated leads."""

import time

import dagster as dg

from ..db.resources import PostgresResource
from ..observe.events import DeadLetter, Event, Stage, clear_pending_dead_letters, record_event, send_to_dlq
from .candidates import find_duplicate_candidates
from .columns import UploadFormatError
from .merge import merge_upload
from .partitions import uploads_partitions
from .staging import STAGE, StageCounts, analyze, stage_upload

STAGED_ROWS_ADD_UP = "staged_rows_add_up"


def load_upload(conn, upload_id: str) -> tuple[str, str]:
    row = conn.execute("SELECT storage_path, source FROM uploads WHERE id = %s", (upload_id,)).fetchone()
    if row is None:
        raise dg.Failure(description=f"upload {upload_id} has no row in `uploads`")
    return row


def fail_upload(postgres: PostgresResource, upload_id: str, reason: str, run_id: str) -> None:
    """Record a refused file (status, DLQ, event) in its own transaction, then fail the run."""
    with postgres.connection() as conn:
        conn.execute("UPDATE uploads SET status = 'failed', error = %s WHERE id = %s", (reason, upload_id))
        clear_pending_dead_letters(conn, STAGE, upload_id, file_level_only=True)
        send_to_dlq(conn, STAGE, [DeadLetter(reason=reason, source_ref=upload_id)], run_id=run_id)
        record_event(conn, Event.UPLOAD_FAILED, stage=STAGE, upload_id=upload_id, run_id=run_id,
                     payload={"reason": reason})
    raise dg.Failure(description=f"upload {upload_id} refused: {reason}", allow_retries=False)


def record_staged(conn, upload_id: str, counts: StageCounts, run_id: str | None, log=None) -> None:
    """Mark the upload staged with its counts; columns nobody reads are a warning, not a secret."""
    conn.execute("UPDATE uploads SET status = 'staged', file_rows = %s, blank_rows = %s, ignored_headers = %s, "
                 "error = NULL WHERE id = %s",
                 (counts.file_rows, counts.blank_rows, list(counts.ignored_headers), upload_id))
    record_event(conn, Event.UPLOAD_STAGED, stage=STAGE, upload_id=upload_id, run_id=run_id,
                 count=counts.staged, duration_ms=int(counts.seconds * 1000),
                 payload={"rejected": counts.rejected, "file_rows": counts.file_rows,
                          "blank_rows": counts.blank_rows, "dropped_values": counts.dropped_values})
    if counts.ignored_headers:
        record_event(conn, Event.UPLOAD_COLUMNS_IGNORED, stage=STAGE, upload_id=upload_id, run_id=run_id,
                     count=len(counts.ignored_headers),
                     payload={"level": "warning", "headers": list(counts.ignored_headers)},
                     idempotency_key=f"{Event.UPLOAD_COLUMNS_IGNORED}:{upload_id}")
        if log:
            log.warning("upload %s: %d column(s) not read: %s", upload_id, len(counts.ignored_headers),
                        ", ".join(counts.ignored_headers))


@dg.asset(
    partitions_def=uploads_partitions,
    group_name="ingest",
    kinds={"python", "postgres"},
    owners=["team:data-platform"],
    check_specs=[dg.AssetCheckSpec(STAGED_ROWS_ADD_UP, asset="staged_leads",
                                   description="staged rows + rejected rows = data rows in the file")],
)
def staged_leads(context: dg.AssetExecutionContext, postgres: PostgresResource) -> dg.MaterializeResult:
    """One upload's CSV, parsed (PropStream or compatible columns), normalized (address → addr_hash,
    phone → E.164, email), validated with Pandera, and COPYed into `leads_staging`.

    Bad rows go to `pipeline_dlq` with the column and reason; a malformed file (e.g. an
    unterminated quote) fails the upload with a clear reason and stages nothing. Re-running the
    partition replaces its staged rows and pending DLQ rows.
    """
    upload_id = context.partition_key
    with postgres.connection() as conn:
        path, source = load_upload(conn, upload_id)
    try:
        with postgres.connection() as conn:
            counts = stage_upload(conn, upload_id, path, source=source, run_id=context.run.run_id, log=context.log)
            record_staged(conn, upload_id, counts, context.run.run_id, context.log)
    except (UploadFormatError, UnicodeDecodeError) as exc:
        fail_upload(postgres, upload_id, str(exc), context.run.run_id)
    except FileNotFoundError:
        fail_upload(postgres, upload_id, f"stored file is missing: {path}", context.run.run_id)
    return dg.MaterializeResult(
        metadata={
            "file_rows": counts.file_rows,
            "staged_rows": counts.staged,
            "rejected_rows": counts.rejected,
            "dropped_values": counts.dropped_values,
            "blank_rows_skipped": counts.blank_rows,
            "ignored_headers": dg.MetadataValue.json(list(counts.ignored_headers)),
            "encoding": counts.encoding,
            "parse_seconds": counts.parse_seconds,
            "duration_s": counts.seconds,
            "rows_per_s": round(counts.file_rows / counts.seconds, 1) if counts.seconds else 0.0,
        },
        check_results=[dg.AssetCheckResult(
            check_name=STAGED_ROWS_ADD_UP,
            passed=counts.staged + counts.rejected == counts.file_rows,
            metadata={"staged": counts.staged, "rejected": counts.rejected, "file_rows": counts.file_rows},
        )],
    )


ROW_ACCOUNTS_SQL = """
SELECT u.file_rows,
       (SELECT count(*) FROM leads_staging s WHERE s.upload_id = u.id),
       (SELECT count(DISTINCT d.row_number) FROM pipeline_dlq d
         WHERE d.stage = %(stage)s AND d.source_ref = u.id::text AND d.row_number IS NOT NULL),
       (SELECT count(*) FROM lead_sources ls WHERE ls.upload_id = u.id)
FROM uploads u WHERE u.id = %(upload)s"""


def ensure_staged(conn, upload_id: str, run_id: str, log) -> bool:
    """Make sure every data row of the file is staged, merged or rejected before the merge.

    `leads_staging` is UNLOGGED: a crash or an immediate shutdown of PostgreSQL empties it. When
    staged + rejected no longer add up to the file's rows (and the upload is not already fully
    merged), the rows are staged again from the stored file; if they still do not add up, the
    merge fails loudly instead of marking a partial upload merged. True when it re-staged.
    """
    row = conn.execute(ROW_ACCOUNTS_SQL, {"stage": STAGE, "upload": upload_id}).fetchone()
    if row is None or row[0] is None:
        raise dg.Failure(description=f"upload {upload_id} has not been staged (no file_rows); run staged_leads first",
                         allow_retries=False)
    file_rows, staged, rejected, merged = row
    if staged + rejected == file_rows or merged + rejected == file_rows:
        return False
    log.warning("upload %s: %d staged + %d rejected of %d file rows (staging lost, e.g. a database crash); "
                "staging again from the stored file", upload_id, staged, rejected, file_rows)
    path, source = load_upload(conn, upload_id)
    try:
        counts = stage_upload(conn, upload_id, path, source=source, run_id=run_id)
    except FileNotFoundError:
        raise dg.Failure(description=f"upload {upload_id}: staged rows were lost and the stored file is missing: "
                                     f"{path}", allow_retries=False) from None
    if counts.staged + counts.rejected != file_rows:
        raise dg.Failure(description=f"upload {upload_id}: re-staged {counts.staged} + {counts.rejected} rejected rows, "
                                     f"but the file had {file_rows} when first staged", allow_retries=False)
    record_event(conn, Event.UPLOAD_RESTAGED, stage=STAGE, upload_id=upload_id, run_id=run_id, count=counts.staged,
                 payload={"rejected": counts.rejected, "file_rows": file_rows})
    return True


@dg.asset(
    partitions_def=uploads_partitions,
    deps=[staged_leads],
    group_name="ingest",
    kinds={"postgres"},
    owners=["team:data-platform"],
    automation_condition=dg.AutomationCondition.eager(),
)
def deduped_leads(context: dg.AssetExecutionContext, postgres: PostgresResource) -> dg.MaterializeResult:
    """The upload's staged rows merged into `leads` set-based: MAK → APN →
    addr_hash, in-batch duplicates collapsed, safe merges (never NULL over a value, booleans OR,
    arrays union), key conflicts recorded in `lead_key_conflicts`, lineage in `lead_sources`.

    Concurrent merges are serialized; re-materializing a partition changes nothing. Staged rows
    lost to a database crash are staged again from the stored file first.
    """
    upload_id = context.partition_key
    started = time.perf_counter()
    with postgres.connection() as conn:
        restaged = ensure_staged(conn, upload_id, context.run.run_id, context.log)
        conn.commit()  # the merge's insert workers read the staged rows from their own connections
        counts = merge_upload(conn, upload_id, connect=postgres.connection)
        analyze(conn, "lead_sources")
        analyze(conn, "leads")
        already = conn.execute(
            "SELECT count(*) FROM lead_sources WHERE upload_id = %s", (upload_id,)
        ).fetchone()[0] - counts.staged
        conn.execute("UPDATE uploads SET status = 'merged' WHERE id = %s", (upload_id,))
        record_event(conn, Event.DEDUPE_SUCCESS, stage=Stage.DEDUPED_LEADS, upload_id=upload_id, run_id=context.run.run_id,
                     count=counts.staged, duration_ms=int(counts.seconds * 1000),
                     payload=counts.as_metadata(), idempotency_key=f"dedupe_success:{upload_id}")
    context.log.info("merged upload %s: %s", upload_id, counts)
    return dg.MaterializeResult(
        metadata={
            **counts.as_metadata(),
            "already_merged_rows": already,
            "restaged_after_loss": restaged,
            "duration_s": round(time.perf_counter() - started, 3),
        }
    )


@dg.asset(
    partitions_def=uploads_partitions,
    deps=[deduped_leads],
    group_name="ingest",
    kinds={"python", "postgres"},
    owners=["team:data-platform"],
    automation_condition=dg.AutomationCondition.eager(),
)
def lead_duplicate_candidates(context: dg.AssetExecutionContext, postgres: PostgresResource) -> dg.MaterializeResult:
    """Probable duplicates among the leads this upload touched that the exact keys did not merge
    (same state, house number, unit and ZIP or city; similar street names by rapidfuzz), listed in
    `lead_duplicate_candidates` with a score and the reason for a person to review — never merged
    automatically. `equity leads candidates` lists them, `equity leads merge A B` settles one."""
    started = time.perf_counter()
    with postgres.connection() as conn:
        found = find_duplicate_candidates(conn, context.partition_key)
        open_pairs = conn.execute("SELECT count(*) FROM lead_duplicate_candidates WHERE status = 'open'").fetchone()[0]
    return dg.MaterializeResult(metadata={"new_candidates": found, "open_candidates": open_pairs,
                                          "duration_s": round(time.perf_counter() - started, 3)})
