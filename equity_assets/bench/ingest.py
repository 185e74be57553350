"""`equity bench ingest --rows N`: the ingest path against the seed's row-by-row design.

On fresh tables, one run measures:
- `copy`: the same file's raw bytes streamed to COPY into an unindexed UNLOGGED table (the floor);
- `row_by_row`: the seed's path, `upsert_lead()` once per row in its own transaction, on the
  first min(N, 50,000) rows (already parsed, so only the database path is timed);
- `pipeline`: `staged_leads` + `deduped_leads` as Dagster materializes them (parse, normalize,
  validate, COPY, set-based merge), wall clock.
Dedupe quality is pairwise precision/recall of the lead every row became (lineage) against known
entities: `dedupe_precision` / `dedupe_recall` on a labelled set of cross-vendor address variants
(two files of the same properties written differently, with hard negatives; see
`ingest.variants`), and `exact_copies_precision` / `_recall` on the throughput file's duplicates.
CPU: `cpu_core_s` is the core-seconds the pipeline used, in this process (parse, normalize, the
merge's grouping) and in every PostgreSQL backend (read from ``/proc``, the server being the
embedded cluster on this machine), split at the end of the `staged_leads` step; `cores_busy` is
their sum over the wall time, and `rows_per_s_with_every_core_busy` the rate the same work would
reach if no core were ever idle: the ceiling of this design on this machine.
The asset checks of `deduped_leads` are timed on the result, with a bound (`CHECK_BOUND_S`):
without planner statistics on the freshly loaded tables they used to go quadratic (minutes at
100k rows).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import tempfile
import time
import uuid
from pathlib import Path

import dagster as dg
import pandas as pd
import psycopg
from psycopg import sql

from ..db.resources import PostgresResource
from ..ingest.assets import deduped_leads, staged_leads
from ..ingest.checks import DUPLICATE_KEYS_SQL, lineage_accounts
from ..ingest.parsing import read_upload
from ..ingest.partitions import uploads_partitions
from ..ingest.operate import ingest_file
from ..ingest.synthetic import write_propstream_csv
from ..ingest.variants import write_variant_files
from .common import CpuSampler, data_directory, fresh_database

OPTIONS = {"rows", "variant_entities"}
ROW_BY_ROW_MAX = 50_000
CHECK_BOUND_S = 10.0  # both checks together, at the default 100k rows
COPY_BLOCK = 1 << 20


def measure_copy(admin: str, path: Path) -> float:
    """Seconds to stream the file's bytes into an unindexed UNLOGGED all-text table."""
    with open(path, newline="", encoding="utf-8") as f:
        header = next(csv.reader(f))
    columns = sql.SQL(", ").join(sql.SQL("{} text").format(sql.Identifier(f"c{i}")) for i in range(len(header)))
    with psycopg.connect(admin) as conn:
        conn.execute(sql.SQL("CREATE UNLOGGED TABLE bench_raw_copy ({})").format(columns))
        started = time.perf_counter()
        with conn.cursor().copy("COPY bench_raw_copy FROM STDIN (FORMAT csv, HEADER true)") as copy, open(path, "rb") as f:
            while block := f.read(COPY_BLOCK):
                copy.write(block)
        conn.commit()
        seconds = time.perf_counter() - started
        conn.execute("DROP TABLE bench_raw_copy")
        conn.commit()
    return seconds


def json_records(path: Path, limit: int) -> list[str]:
    """The first `limit` parsed rows as upsert_lead() payloads."""
    frames = []
    taken = 0
    for chunk in read_upload(path, chunk_rows=min(limit, 200_000)):
        frames.append(chunk.frame)
        taken += len(chunk.frame)
        if taken >= limit:
            break
    frame = pd.concat(frames).head(limit).drop(columns=["row_number"])
    return [json.dumps({k: v for k, v in row.items() if v is not None}, default=_json_value)
            for row in frame.astype(object).where(frame.notna(), None).to_dict("records")]


def _json_value(value):
    return value.tolist() if hasattr(value, "tolist") else str(value)


def measure_row_by_row(app: str, payloads: list[str]) -> tuple[float, float]:
    """(seconds, p95 ms) for upsert_lead() once per row, each in its own transaction."""
    latencies = []
    with psycopg.connect(app, autocommit=True) as conn:
        conn.execute("SET ROLE service_role")
        started = time.perf_counter()
        for payload in payloads:
            t = time.perf_counter()
            conn.execute("SELECT upsert_lead(%s::jsonb)", (payload,))
            latencies.append(time.perf_counter() - t)
        seconds = time.perf_counter() - started
        conn.execute("DELETE FROM lead_key_conflicts")
        conn.execute("DELETE FROM leads")
    latencies.sort()
    return seconds, latencies[int(len(latencies) * 0.95)] * 1000


def register_upload(app: str, path: Path) -> str:
    upload_id = str(uuid.uuid4())
    with psycopg.connect(app) as conn:
        conn.execute("SET ROLE service_role")
        conn.execute(
            "INSERT INTO uploads (id, content_sha256, source, storage_path, byte_size) VALUES (%s, %s, 'propstream', %s, %s)",
            (upload_id, hashlib.sha256(upload_id.encode()).hexdigest(), str(path), path.stat().st_size),
        )
    return upload_id


def measure_pipeline(app: str, upload_id: str, data_dir: Path) -> tuple[float, dict, dict, dict]:
    """(seconds, staged_leads metadata, deduped_leads metadata, CPU core-seconds per step)."""
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(uploads_partitions.name, [upload_id])
    postgres = PostgresResource(dsn=app)
    with CpuSampler(data_dir) as cpu:
        started = time.perf_counter()
        result = dg.materialize([staged_leads, deduped_leads], partition_key=upload_id, instance=instance,
                                resources={"postgres": postgres})
        seconds = time.perf_counter() - started
    postgres.close()
    md = {node: {k: v.value for k, v in result.asset_materializations_for_node(node)[0].metadata.items()}
          for node in ("staged_leads", "deduped_leads")}
    staged_end = cpu.at(next(e.timestamp for e in instance.all_logs(result.run_id, of_type=dg.DagsterEventType.STEP_SUCCESS)
                             if e.step_key == "staged_leads"))
    first, last = cpu.samples[0], cpu.samples[-1]
    core_s = {"stage": cpu.between(first, staged_end), "merge": cpu.between(staged_end, last),
              "pipeline": cpu.between(first, last)}
    return seconds, md["staged_leads"], md["deduped_leads"], core_s


def measure_checks(app: str, upload_id: str) -> dict:
    """Seconds of each deduped_leads check as the pipeline's role runs it, and the statistics it plans with."""
    with psycopg.connect(app) as conn:
        conn.execute("SET ROLE service_role")
        started = time.perf_counter()
        lineage = lineage_accounts(conn, upload_id)
        lineage_s = time.perf_counter() - started
        started = time.perf_counter()
        conn.execute(DUPLICATE_KEYS_SQL).fetchall()
        duplicates_s = time.perf_counter() - started
        estimates = dict(conn.execute(
            "SELECT relname, reltuples::bigint FROM pg_class WHERE oid IN "
            "('leads_staging'::regclass, 'lead_sources'::regclass, 'leads'::regclass)").fetchall())
    return {
        "lineage_s": round(lineage_s, 3),
        "duplicate_keys_s": round(duplicates_s, 3),
        "passed": bool(lineage.passed),
        "bound_s": CHECK_BOUND_S,
        "within_bound": lineage_s + duplicates_s <= CHECK_BOUND_S,
        "planner_row_estimates": estimates,
    }


def measure_variants(entities: int, folder: Path) -> dict:
    """Ingest the labelled variant files into a fresh database; score the leads the rows became."""
    paths, truth = write_variant_files(folder, entities)
    with fresh_database("equity_bench_variants") as (_admin, app):
        postgres = PostgresResource(dsn=app)
        uploads = {path.name: ingest_file(postgres, path)["upload_id"] for path in paths}
        with postgres.connection() as conn:
            lineage = {(name, row): str(lead) for name, upload in uploads.items()
                       for row, lead in conn.execute(
                           "SELECT row_number, lead_id FROM lead_sources WHERE upload_id = %s", (upload,))}
            conflicts = conn.execute("SELECT count(*) FROM lead_key_conflicts").fetchone()[0]
        postgres.close()
    keys = sorted(truth.entity_of)
    predicted = pd.Series([lineage.get(k, f"unmerged:{k}") for k in keys])
    actual = pd.Series([truth.entity_of[k] for k in keys])
    return {**pairwise(predicted, actual), "rows": len(keys), "entities": int(actual.nunique()),
            "unmerged_rows": sum(k not in lineage for k in keys), "key_conflicts": conflicts}


def pairwise(predicted: pd.Series, actual: pd.Series) -> dict:
    """Pairwise precision / recall of a clustering against the truth."""
    def pairs(sizes: pd.Series) -> int:
        return int((sizes * (sizes - 1) // 2).sum())

    joint = pairs(pd.DataFrame({"p": predicted, "a": actual}).value_counts())
    predicted_pairs, true_pairs = pairs(predicted.value_counts()), pairs(actual.value_counts())
    return {"precision": joint / predicted_pairs if predicted_pairs else 1.0,
            "recall": joint / true_pairs if true_pairs else 1.0,
            "true_pairs": true_pairs, "predicted_pairs": predicted_pairs, "correct_pairs": joint}


def run(rows: int = 100_000, variant_entities: int = 3000) -> dict:
    with tempfile.TemporaryDirectory() as tmp, fresh_database() as (admin, app):
        path = Path(tmp) / "propstream.csv"
        started = time.perf_counter()
        truth = write_propstream_csv(path, rows)
        generate_s = time.perf_counter() - started

        copy_s = measure_copy(admin, path)
        sample = json_records(path, min(rows, ROW_BY_ROW_MAX))
        rbr_s, rbr_p95 = measure_row_by_row(app, sample)
        with psycopg.connect(admin, autocommit=True) as conn:
            # the sample's leads are deleted: vacuum them, or autovacuum does it during the pipeline
            conn.execute("VACUUM (ANALYZE) leads")

        upload_id = register_upload(app, path)
        data_dir = data_directory(admin)
        pipeline_s, staged, merged, core_s = measure_pipeline(app, upload_id, data_dir)
        checks = measure_checks(app, upload_id)
        with psycopg.connect(admin) as conn:
            lineage = dict(conn.execute(
                "SELECT row_number, lead_id::text FROM lead_sources WHERE upload_id = %s", (upload_id,)).fetchall())
            leads_after = conn.execute("SELECT count(*) FROM leads").fetchone()[0]
        clusters = [lineage.get(i, f"rejected:{i}") for i in range(1, rows + 1)]
        scores = truth.pairwise_scores(pd.Series(clusters))
    with tempfile.TemporaryDirectory() as tmp:
        variants = measure_variants(variant_entities, Path(tmp))

    copy_rps = rows / copy_s
    rbr_rps = len(sample) / rbr_s
    pipeline_rps = rows / pipeline_s
    return {
        "rows": rows,
        "copy_rows_per_s": round(copy_rps),
        "row_by_row_rows": len(sample),
        "row_by_row_rows_per_s": round(rbr_rps),
        "row_by_row_p95_ms": round(rbr_p95, 3),
        "pipeline_rows_per_s": round(pipeline_rps),
        "pipeline_seconds": round(pipeline_s, 2),
        "pipeline_vs_row_by_row": round(pipeline_rps / rbr_rps, 2),
        "pipeline_vs_copy": round(pipeline_rps / copy_rps, 3),
        "dedupe_precision": round(variants["precision"], 5),
        "dedupe_recall": round(variants["recall"], 5),
        "variant_set": {k: round(v, 5) if isinstance(v, float) else v for k, v in variants.items()},
        "exact_copies_precision": round(scores.precision, 5),
        "exact_copies_recall": round(scores.recall, 5),
        "true_entities": truth.n_entities,
        "leads_after": leads_after,
        "rejected_rows": staged["rejected_rows"],
        "profile_s": {
            "generate_file": round(generate_s, 2),
            "parse_normalize_validate": staged["parse_seconds"],
            "stage_total": staged["duration_s"],
            "merge": merged["seconds"],
            "merge_steps": {k: merged[k] for k in ("resolve_addresses_s", "match_keys_s", "find_singles_s", "group_s",
                                                       "apply_s", "apply_update_s", "apply_insert_s", "apply_fold_s",
                                                       "apply_lineage_s", "rekey_s", "new_singles_s",
                                                       "singles_tail_s")
                            if k in merged},
            "dagster_overhead": round(pipeline_s - staged["duration_s"] - merged["duration_s"], 2),
        },
        # what the run cost in CPU: at 50,000 rows/s a 1M-row upload on two cores has 40 core-seconds
        "cpu_core_s": core_s["pipeline"] | {"stage": core_s["stage"], "merge": core_s["merge"]},
        "cores_busy": round(core_s["pipeline"]["total"] / pipeline_s, 2),
        "rows_per_s_with_every_core_busy": round(rows / (core_s["pipeline"]["total"] / len(os.sched_getaffinity(0))))
        if core_s["pipeline"]["total"] else None,
        "merge": {k: merged[k] for k in ("inserted", "updated", "merged_in_batch", "conflicts", "rounds",
                                         "address_variants_resolved", "leads_rekeyed")},
        "checks": checks,
    }
