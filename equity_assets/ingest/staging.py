"""Loading one upload's parsed rows into `leads_staging` with COPY, bad rows into the DLQ."""

from __future__ import annotations

import time
from dataclasses import dataclass

import psycopg

from ..observe.events import DeadLetter, Stage, clear_pending_dead_letters, copy_dead_letters
from .parsing import ParsedChunk, Reject, read_upload

STAGE = Stage.STAGED_LEADS
COPY_DROPPED = "COPY ingest_dropped_values (upload_id, row_number, column_name, value, reason) FROM STDIN"
BLANK_ROW_REASON = "blank row: every cell is empty; skipped"


@dataclass(frozen=True)
class StageCounts:
    file_rows: int
    staged: int
    rejected: int
    dropped_values: int
    blank_rows: int
    ignored_headers: tuple[str, ...]
    encoding: str
    parse_seconds: float
    seconds: float


def lock_upload(conn: psycopg.Connection, upload_id: str) -> None:
    """Hold this upload until the transaction ends: its staging and its merge never overlap. Two
    runs of one partition (a backfill and the sensor, a double click) then go one after the other;
    otherwise one could re-stage the rows, under new lead ids, while the other merges them."""
    conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"ingest:upload:{upload_id}",))


def clear_partition(conn: psycopg.Connection, upload_id: str) -> None:
    """Delete-then-insert: a re-run of the partition replaces what an earlier run staged."""
    conn.execute("DELETE FROM leads_staging WHERE upload_id = %s", (upload_id,))
    clear_pending_dead_letters(conn, STAGE, upload_id)
    conn.execute("DELETE FROM ingest_dropped_values WHERE upload_id = %s", (upload_id,))


def analyze(conn: psycopg.Connection, table: str) -> None:
    """ANALYZE through the owner's maintenance function (a plain ANALYZE by the pipeline's role,
    which does not own the table, is skipped with only a warning)."""
    conn.execute("SELECT analyze_pipeline_table(%s)", (table,))


def write_rejects(conn: psycopg.Connection, upload_id: str, rejects: list[Reject], run_id: str | None) -> None:
    letters = (DeadLetter(r.reason, upload_id, r.row_number, r.column, r.raw) for r in rejects)
    copy_dead_letters(conn, STAGE, letters, run_id=run_id)


def write_dropped(conn: psycopg.Connection, upload_id: str, chunk: ParsedChunk) -> None:
    """Every value removed from a staged row, and every blank record skipped, with its reason."""
    if not (chunk.dropped or chunk.blank_rows):
        return
    with conn.cursor().copy(COPY_DROPPED) as copy:
        for d in chunk.dropped:
            copy.write_row((upload_id, d.row_number, d.column, d.value, d.reason))
        for row in chunk.blank_rows:
            copy.write_row((upload_id, row, "*", None, BLANK_ROW_REASON))


def stage_upload(conn: psycopg.Connection, upload_id: str, path: str, *, source: str,
                 run_id: str | None = None, chunk_rows: int = 200_000, log=None) -> StageCounts:
    """Parse `path` and COPY it into staging inside the caller's transaction.

    Raises the parser's `UploadFormatError` (malformed CSV, missing columns) before anything is
    written, so a refused file leaves no partial partition behind.
    """
    started = time.perf_counter()
    # COPY bytes are built on the parser's worker threads, with upload_id as a constant column
    # and each row's lead id minted there (a new lead takes it in the merge)
    parse = read_upload(path, chunk_rows=chunk_rows, source=source, copy_csv=True,
                        copy_constants={"upload_id": upload_id}, lead_ids=True)
    copy_sql = f"COPY leads_staging ({', '.join(parse.copy_columns)}) FROM STDIN (FORMAT csv)"
    lock_upload(conn, upload_id)
    clear_partition(conn, upload_id)
    for chunk in parse:
        with conn.cursor().copy(copy_sql) as copy:
            copy.write(chunk.copy_csv)
        if chunk.rejects:
            write_rejects(conn, upload_id, chunk.rejects, run_id)
        write_dropped(conn, upload_id, chunk)
        if log:
            log.info("staged %d rows so far (%d rejected)", parse.staged_rows, parse.rejected_rows)
    # fresh statistics, so the merge's joins against staging are planned for its real size
    analyze(conn, "leads_staging")
    return StageCounts(
        file_rows=parse.file_rows,
        staged=parse.staged_rows,
        rejected=parse.rejected_rows,
        dropped_values=parse.dropped_values,
        blank_rows=parse.blank_rows,
        ignored_headers=parse.header_map.ignored,
        encoding=parse.encoding,
        parse_seconds=round(parse.seconds, 3),
        seconds=round(time.perf_counter() - started, 3),
    )
