"""Set-based triple-key merge of one upload's staged rows into `leads`.

The result equals running the seed's `upsert_lead()` over the rows in file order, but in a
handful of statements instead of one round trip per row:

0. A row whose addr_hash matches no lead first takes the addr_hash of the property its address
   names (`address_resolution`); after step 5, leads the merge completed are re-keyed there too.
1. Every staged row is matched against existing leads on the three keys at once (hash joins).
2. A row that shares no key with another row and matches no lead (most rows) is a new lead of
   its own: inserted straight from staging with its lineage (`insert_new_singles`). At scale a
   worker connection inserts such rows in parts, each committed with its lineage, while this
   connection does steps 3–5 and then takes the parts left.
3. The other rows form groups: rows that share a key inside the upload, or resolve to the same
   existing lead. Their keys are streamed out with COPY and the connected components, rounds and
   folding are worked out in numpy (`grouping`), then COPYed back as a small plan table.
4. A group whose rows agree on every key and match no existing lead (the usual in-file
   duplicate) is folded into one record with the `lead_fold` aggregate (`lead_merge()` in file
   order) and inserted once, under the lead id the plan gave the group; the group's other rows
   get their lineage (`in_batch`) in the same statement as the round's rows.
5. Other groups are applied in rounds: round r holds the r-th row of every group, so no
   statement touches a lead twice or inserts one key twice. Each round matches MAK → APN →
   addr_hash, records keys that point at another lead in `lead_key_conflicts` (and does not
   apply them), folds the row into its lead with `lead_merge()` (the same rules as
   `upsert_lead`), inserts the rest as new leads, and records lineage (`lead_sources`: which lead
   every row became and which key matched).

Merges run one at a time (a transaction-level advisory lock); readers and other writers of
`leads` go on. A concurrent writer of the same key (verification giving a lead its MAK) makes
one of the two fail on the unique index, and its re-run sees the other's lead. Re-running an
upload changes nothing: lineage is the receipt, written in the same transaction as the leads it
accounts for, so rows with lineage are skipped and the rest are merged.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass

import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.csv as pcsv
from psycopg import sql

from .address_resolution import rekey_touched_leads, resolve_address_identity
from .grouping import LINK_COLUMNS, plan_groups
from .staging import lock_upload


@dataclass(frozen=True)
class MergeCounts:
    staged: int
    inserted: int
    updated: int
    unchanged: int
    merged_in_batch: int
    conflicts: int
    rounds: int
    address_variants_resolved: int
    leads_rekeyed: int
    steps: dict[str, float]
    seconds: float

    def as_metadata(self) -> dict[str, int | float]:
        flat = {k: v for k, v in self.__dict__.items() if k != "steps"}
        return {**flat, **self.steps}


class Laps:
    """Seconds per named step, summed when a step repeats (the merge's rounds)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.restart()

    def restart(self) -> None:
        self._mark = time.perf_counter()

    def __call__(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = self.seconds.get(name, 0.0) + now - self._mark
        self._mark = now

    def rounded(self) -> dict[str, float]:
        return {name: round(value, 3) for name, value in self.seconds.items()}


def catalog(conn: psycopg.Connection) -> tuple[list[tuple[str, str]], list[str]]:
    """(leads columns with types, ingest columns) from the catalog, so SQL follows the schema."""
    leads = conn.execute(
        """SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute
           WHERE attrelid = 'leads'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum"""
    ).fetchall()
    staging = [
        r[0] for r in conn.execute(
            """SELECT attname FROM pg_attribute
               WHERE attrelid = 'leads_staging'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum"""
        )
    ]
    lead_names = {name for name, _ in leads}
    ingest = [c for c in staging if c not in ("upload_id", "row_number") and c in lead_names]
    return leads, ingest


def incoming_record_sql(leads: list[tuple[str, str]], ingest: list[str], alias: str) -> sql.Composable:
    """`ROW(...)::leads` built from a staging-shaped row: what `lead_merge()` folds in."""
    present = set(ingest)
    parts = [
        sql.SQL("{}.{}").format(sql.Identifier(alias), sql.Identifier(name)) if name in present
        else sql.SQL("NULL::{}").format(sql.SQL(typ))
        for name, typ in leads
    ]
    return sql.SQL("ROW({})::leads").format(sql.SQL(", ").join(parts))


APN_KEY = "CASE WHEN {a}.apn IS NOT NULL AND {a}.property_state IS NOT NULL AND {a}.county IS NOT NULL " \
          "THEN {a}.property_state || '|' || {a}.county || '|' || {a}.apn END"


def _key_owner_joins(alias: str) -> str:
    # broker-created leads never match: a key a broker could plant must not pull in an upload's row
    return f"""
        LEFT JOIN leads lm ON lm.mak = {alias}.mak AND NOT lm.broker_created
        LEFT JOIN leads la ON la.apn = {alias}.apn AND la.property_state = {alias}.property_state
                          AND la.county = {alias}.county AND NOT la.broker_created
        LEFT JOIN leads lh ON lh.addr_hash = {alias}.addr_hash AND NOT lh.broker_created"""


def build_work_table(conn: psycopg.Connection, upload_id: str) -> int:
    """merge_keys: one row per staged row not yet merged, with its keys and their current owners."""
    conn.execute(
        f"""CREATE TEMP TABLE merge_keys ON COMMIT DROP AS
            SELECT s.row_number AS rn, s.mak, s.apn, s.property_state, s.county,
                   {APN_KEY.format(a='s')} AS apn_key, s.addr_hash,
                   lm.id AS by_mak, la.id AS by_apn, lh.id AS by_addr, s.new_lead_id
            FROM leads_staging s {_key_owner_joins('s')}
            WHERE s.upload_id = %s
              -- rows merged by an earlier run of this upload are done (lineage is the receipt)
              AND NOT EXISTS (SELECT 1 FROM lead_sources ls
                              WHERE ls.upload_id = s.upload_id AND ls.row_number = s.row_number)""",
        (upload_id,),
    )
    return conn.execute("SELECT count(*) FROM merge_keys").fetchone()[0]


# The rows that can share a group: a key that repeats inside the upload, or an existing lead
# that more than one row resolves to. Every other row is a group of its own.
LINKED_ROWS_SQL = """
SELECT rn, mak, apn_key, addr_hash, coalesce(by_mak, by_apn, by_addr)::text AS target
FROM merge_keys
WHERE mak IN (SELECT mak FROM merge_keys WHERE mak IS NOT NULL GROUP BY 1 HAVING count(*) > 1)
   OR apn_key IN (SELECT apn_key FROM merge_keys WHERE apn_key IS NOT NULL GROUP BY 1 HAVING count(*) > 1)
   OR addr_hash IN (SELECT addr_hash FROM merge_keys WHERE addr_hash IS NOT NULL GROUP BY 1 HAVING count(*) > 1)
   OR coalesce(by_mak, by_apn, by_addr) IN (
         SELECT coalesce(by_mak, by_apn, by_addr) FROM merge_keys
         WHERE coalesce(by_mak, by_apn, by_addr) IS NOT NULL GROUP BY 1 HAVING count(*) > 1)"""


def fetch_linked_rows(conn: psycopg.Connection) -> pd.DataFrame:
    """The linked rows' keys, streamed out with COPY and read by Arrow (no Python object per value)."""
    buffer = bytearray()
    with conn.cursor().copy("COPY merge_linked TO STDOUT (FORMAT csv)") as copy:
        for block in copy:
            buffer += block
    names = ["rn", *LINK_COLUMNS]
    if not buffer:
        return pd.DataFrame({name: pd.Series(dtype="int64" if name == "rn" else "object") for name in names})
    table = pcsv.read_csv(
        pa.py_buffer(bytes(buffer)),
        read_options=pcsv.ReadOptions(column_names=names),
        parse_options=pcsv.ParseOptions(newlines_in_values=True),  # a county or APN as the file wrote it
        # COPY writes NULL as an unquoted empty field; no key is ever an empty string
        convert_options=pcsv.ConvertOptions(column_types={"rn": pa.int64(), **{c: pa.string() for c in LINK_COLUMNS}},
                                            strings_can_be_null=True),
    )
    return table.to_pandas()


def find_single_rows(conn: psycopg.Connection) -> list[int]:
    """The row numbers of rows that share no key with another row and match no lead: a new lead
    each (`insert_new_singles`). The linked rows' keys are kept in `merge_linked` for the grouping."""
    conn.execute(f"CREATE TEMP TABLE merge_linked ON COMMIT DROP AS {LINKED_ROWS_SQL}")
    return conn.cursor(binary=True).execute(
        """SELECT coalesce(array_agg(k.rn ORDER BY k.rn), '{}') FROM merge_keys k
           WHERE coalesce(k.by_mak, k.by_apn, k.by_addr) IS NULL
             AND NOT EXISTS (SELECT 1 FROM merge_linked l WHERE l.rn = k.rn)"""
    ).fetchone()[0]


def group_linked_rows(conn: psycopg.Connection) -> int:
    """merge_rows: the rows of `merge_linked` and those that match a lead, with each row's group,
    round and folding (see `grouping`) and the id a new lead made from it would take. Returns the
    number of rounds."""
    plan = plan_groups(fetch_linked_rows(conn))
    conn.execute("CREATE TEMP TABLE merge_plan (rn integer PRIMARY KEY, grp bigint, round integer, folded boolean, "
                 "new_id uuid) ON COMMIT DROP")
    if len(plan.frame):
        sink = pa.BufferOutputStream()
        pcsv.write_csv(pa.Table.from_pandas(plan.frame, preserve_index=False), sink,
                       write_options=pcsv.WriteOptions(include_header=False))
        with conn.cursor().copy("COPY merge_plan (rn, grp, round, folded, new_id) FROM STDIN (FORMAT csv)") as copy:
            copy.write(sink.getvalue().to_pybytes())
        conn.execute("ANALYZE merge_plan")
    conn.execute(
        """CREATE TEMP TABLE merge_rows ON COMMIT DROP AS
           SELECT k.rn, k.mak, k.apn, k.property_state, k.county, k.apn_key, k.addr_hash,
                  k.by_mak, k.by_apn, k.by_addr,
                  coalesce(p.grp, k.rn) AS grp, coalesce(p.round, 1) AS round,
                  coalesce(p.folded, false) AS folded,
                  -- the id a new lead made from this row would take (minted at staging); every
                  -- row of a folded group carries its group's id (given by the plan)
                  coalesce(p.new_id, CASE WHEN coalesce(k.by_mak, k.by_apn, k.by_addr) IS NULL THEN k.new_lead_id END)
                      AS new_id
           FROM merge_keys k LEFT JOIN merge_plan p USING (rn)
           WHERE p.rn IS NOT NULL OR coalesce(k.by_mak, k.by_apn, k.by_addr) IS NOT NULL"""
    )
    conn.execute("DROP TABLE merge_keys, merge_linked, merge_plan")
    conn.execute("CREATE UNIQUE INDEX ON merge_rows (rn)")
    # without statistics on the target expression the planner takes "no existing lead" for 0.5%
    # of the rows and joins each new lead's staged row by index (a nested loop over ~100k rows)
    conn.execute("CREATE STATISTICS pg_temp.merge_rows_target ON (coalesce(by_mak, by_apn, by_addr)) FROM merge_rows")
    # later rounds are small: let the planner see that and use the staging index
    conn.execute("CREATE INDEX ON merge_rows (round) WHERE round <> 1")
    conn.execute("ANALYZE merge_rows")
    return plan.rounds


# The staged rows of `insert_new_singles`: the planner sees the array's length and reads the part's
# range of staging once (a hash or merge join) rather than probing it once per row. Without the
# range, a 25,000-row part of a 120,000-row upload hashed the whole upload's staging (191 → 58 ms).
SINGLE_ROWS = """unnest(%(rows)s::integer[]) r(rn) JOIN leads_staging s
    ON s.upload_id = %(upload)s AND s.row_number = r.rn AND s.row_number BETWEEN %(lo)s AND %(hi)s"""


def insert_new_singles(conn: psycopg.Connection, upload_id: str, rows: list[int], leads, ingest) -> int:
    """A new lead for each of `rows` (staged rows that share no key with another row or a lead),
    under the id it was staged with, and its lineage ('new'). Returns the number inserted."""
    if not rows:
        return 0
    params = {"upload": upload_id, "rows": rows, "lo": min(rows), "hi": max(rows)}
    inserted = conn.execute(
        sql.SQL(
            f"""INSERT INTO leads (id, first_upload_id, source, {{cols}})
               SELECT s.new_lead_id, %(upload)s, 'upload', {{vals}} FROM {SINGLE_ROWS}"""
        ).format(cols=sql.SQL(", ").join(map(sql.Identifier, ingest)),
                 vals=sql.SQL(", ").join(_insert_value(c, leads, "s") for c in ingest)),
        params,
    ).rowcount
    conn.execute(
        f"""INSERT INTO lead_sources (upload_id, row_number, lead_id, matched_on)
            SELECT %(upload)s, s.row_number, s.new_lead_id, 'new' FROM {SINGLE_ROWS}""",
        params,
    )
    return inserted


TARGET = "coalesce(m.by_mak, m.by_apn, m.by_addr)"


def apply_round(conn: psycopg.Connection, upload_id: str, round_no: int, leads, ingest,
                folded_tails: int, lap: Laps) -> dict[str, int]:
    """Fold the round's rows into their leads or insert them; record lineage and conflicts."""
    lap.restart()
    if round_no > 1:  # earlier rounds changed who owns which key
        conn.execute(
            f"""UPDATE merge_rows m SET by_mak = lm.id, by_apn = la.id, by_addr = lh.id
                FROM merge_rows s {_key_owner_joins('s')}
                WHERE s.round = %s AND m.rn = s.rn""",
            (round_no,),
        )
    staged_cols = sql.SQL(", ").join(sql.SQL("s.{}").format(sql.Identifier(c)) for c in ingest)
    # rows that match a lead: usually few, so copying their staged values is cheap
    conn.execute(
        sql.SQL(
            f"""CREATE TEMP TABLE round_rows ON COMMIT DROP AS
               SELECT m.rn, {TARGET} AS target, m.by_mak, m.by_apn, m.by_addr, {{cols}}
               FROM merge_rows m JOIN leads_staging s ON s.upload_id = %s AND s.row_number = m.rn
               WHERE m.round = %s AND NOT m.folded AND {TARGET} IS NOT NULL"""
        ).format(cols=staged_cols),
        (upload_id, round_no),
    )
    conflicts = record_address_conflicts(conn, upload_id)
    conflicts += conn.execute(
        """INSERT INTO lead_key_conflicts (lead_id, other_lead_id, key_name, source_ref)
           SELECT DISTINCT target, other, key_name, %s FROM (
               SELECT target, by_apn AS other, 'apn' AS key_name FROM round_rows WHERE by_apn <> target
               UNION ALL
               SELECT target, by_addr, 'addr_hash' FROM round_rows WHERE by_addr <> target) c
           ON CONFLICT DO NOTHING""",
        (f"upload:{upload_id}",),
    ).rowcount
    # keys owned by another lead are not applied to the target
    conn.execute(
        """UPDATE round_rows SET apn = CASE WHEN by_apn <> target THEN NULL ELSE apn END,
                                 addr_hash = CASE WHEN by_addr <> target THEN NULL ELSE addr_hash END
           WHERE by_apn <> target OR by_addr <> target"""
    )
    merge_cols = [name for name, _ in leads if name not in ("id", "created_at", "updated_at")]
    updated = conn.execute(
        sql.SQL(
            """WITH merged AS MATERIALIZED (
                   SELECT r.target, lead_merge(l, {inc}) AS m, l AS cur
                   FROM round_rows r JOIN leads l ON l.id = r.target)
               UPDATE leads l SET {assign}
               FROM merged WHERE l.id = merged.target AND merged.m IS DISTINCT FROM merged.cur"""
        ).format(
            inc=incoming_record_sql(leads, ingest, "r"),
            assign=sql.SQL(", ").join(
                sql.SQL("{c} = (merged.m).{c}").format(c=sql.Identifier(c)) for c in merge_cols
            ),
        )
    ).rowcount
    conn.execute("DROP TABLE round_rows")
    lap("apply_update_s")
    # new leads straight from staging (no copy), each under the id reserved in merge_rows
    insert_cols = sql.SQL(", ").join(map(sql.Identifier, ingest))
    inserted = conn.execute(
        sql.SQL(
            f"""INSERT INTO leads (id, first_upload_id, source, {{cols}})
               SELECT m.new_id, %s, 'upload', {{vals}}
               FROM merge_rows m JOIN leads_staging s ON s.upload_id = %s AND s.row_number = m.rn
               WHERE m.round = %s AND NOT m.folded AND {TARGET} IS NULL"""
        ).format(cols=insert_cols, vals=sql.SQL(", ").join(_insert_value(c, leads, "s") for c in ingest)),
        (upload_id, upload_id, round_no),
    ).rowcount
    lap("apply_insert_s")
    if round_no == 1:  # each folded group becomes one new lead, under its first row's id
        inserted += conn.execute(
            sql.SQL(
                """INSERT INTO leads (id, first_upload_id, source, {cols})
                   SELECT f.new_id, %(upload)s, 'upload', {vals}
                   FROM (SELECT m.new_id, lead_fold({inc} ORDER BY m.rn) AS rec
                         FROM merge_rows m JOIN leads_staging s ON s.upload_id = %(upload)s AND s.row_number = m.rn
                         WHERE m.folded
                         GROUP BY m.new_id
                         OFFSET 0) f"""
            ).format(
                cols=insert_cols,
                vals=sql.SQL(", ").join(_insert_value(c, leads, "(f.rec)") for c in ingest),
                inc=incoming_record_sql(leads, ingest, "s"),
            ),
            {"upload": upload_id},
        ).rowcount
    lap("apply_fold_s")
    # round 1 also accounts for the rest of each folded group: its group's lead, 'in_batch'.
    # A plain insert (no ON CONFLICT): merge_rows holds only rows without lineage, each in one
    # round, under the lock that serializes merges, so a conflict would be a bug and must fail.
    rows = conn.execute(
        f"""INSERT INTO lead_sources (upload_id, row_number, lead_id, matched_on)
           SELECT %(upload)s, m.rn, coalesce({TARGET}, m.new_id),
                  CASE WHEN m.round = 0 THEN 'in_batch'
                       WHEN {TARGET} IS NULL THEN 'new'
                       WHEN %(round)s > 1 AND EXISTS (SELECT 1 FROM lead_sources p
                                                      WHERE p.upload_id = %(upload)s AND p.lead_id = {TARGET}
                                                        AND p.matched_on = 'new') THEN 'in_batch'
                       WHEN m.by_mak IS NOT NULL THEN 'mak'
                       WHEN m.by_apn = {TARGET} THEN 'apn'
                       ELSE 'addr_hash' END
           FROM merge_rows m WHERE m.round = %(round)s OR (%(round)s = 1 AND m.round = 0)""",
        {"upload": upload_id, "round": round_no},
    ).rowcount - (folded_tails if round_no == 1 else 0)
    lap("apply_lineage_s")
    # each lead is touched at most once per round, so the rest of the rows changed nothing
    return {"rows": rows, "inserted": inserted, "updated": updated, "conflicts": conflicts,
            "unchanged": rows - inserted - updated}


def record_address_conflicts(conn: psycopg.Connection, upload_id: str) -> int:
    """A MAK or APN match whose address names another property (a re-used or mistyped APN):
    record the lead and the row side by side in `lead_key_conflicts`, and apply nothing of the row
    (its address, owner and contacts describe a different property). Lineage still points at the
    matched lead, so the row is accounted for; a person resolves the conflict."""
    conn.execute(
        """CREATE TEMP TABLE conflict_rows ON COMMIT DROP AS
           SELECT r.rn, r.target, r.by_addr, CASE WHEN r.by_mak = r.target THEN 'mak' ELSE 'apn' END AS matched_on,
                  to_jsonb(l) AS lead_row, to_jsonb(r) - 'target' - 'by_mak' - 'by_apn' - 'by_addr' AS incoming_row
           FROM round_rows r JOIN leads l ON l.id = r.target
           WHERE r.by_addr IS DISTINCT FROM r.target
             AND r.addr_hash IS NOT NULL AND l.addr_hash IS NOT NULL AND r.addr_hash <> l.addr_hash"""
    )
    count = conn.execute(
        """INSERT INTO lead_key_conflicts (lead_id, other_lead_id, key_name, source_ref, upload_id, row_number,
                                           matched_on, lead_row, incoming_row)
           SELECT target, by_addr, 'address', %s, %s, rn, matched_on, lead_row, incoming_row FROM conflict_rows
           ON CONFLICT DO NOTHING""",
        (f"upload:{upload_id}", upload_id),
    ).rowcount
    conn.execute("DELETE FROM round_rows r USING conflict_rows c WHERE r.rn = c.rn")
    conn.execute("DROP TABLE conflict_rows")
    return count


def _insert_value(column: str, leads: list[tuple[str, str]], source: str) -> sql.Composable:
    """A new lead takes the staged value; NOT NULL arrays/booleans fall back to their defaults."""
    value = sql.SQL("{}.{}").format(sql.SQL(source), sql.Identifier(column))
    typ = dict(leads)[column]
    if typ.endswith("[]"):
        return sql.SQL("coalesce({v}, '{{}}')").format(v=value)
    if typ == "boolean" and column in ("do_not_mail", "litigator", "deceased"):
        return sql.SQL("coalesce({v}, false)").format(v=value)
    return value


# Merges run one at a time (each decides who owns which key); other writers of leads go on.
MERGE_LOCK_KEY = "ingest:merge"
# New single rows are inserted in parts by a worker connection while the merge's own connection
# applies the rest, which then takes parts too: two backends busy on a 2-core machine, not more
# (a new lead is an entry in ~8 indexes, the merge's largest cost). Below PARALLEL_MIN_ROWS the
# merge's connection inserts them alone.
INSERT_WORKERS = 1
PARALLEL_MIN_ROWS = 50_000
PART_ROWS = 25_000
# A worker never waits for the merge's own transaction (its rows share no key with any other
# row); a wait means a concurrent writer of the same key, so fail instead of waiting on it.
WORKER_LOCK_TIMEOUT = "30s"

Connect = Callable[[], AbstractContextManager[psycopg.Connection]]


class SingleRowParts:
    """The new single rows in parts, handed to whichever connection is free; none after a failure."""

    def __init__(self, rows: list[int], part_rows: int) -> None:
        self._parts = deque(rows[i:i + part_rows] for i in range(0, len(rows), part_rows))
        self._lock = threading.Lock()
        self.failed = False

    def take(self) -> list[int] | None:
        with self._lock:
            return None if self.failed or not self._parts else self._parts.popleft()


def insert_parts(parts: SingleRowParts, insert: Callable[[list[int]], int]) -> int:
    """Insert parts until none are left; a failure stops every taker."""
    inserted = 0
    try:
        while (part := parts.take()) is not None:
            inserted += insert(part)
    except BaseException:
        parts.failed = True
        raise
    return inserted


def _insert_committed(connect: Connect, upload_id: str, rows: list[int], leads, ingest) -> int:
    """A worker's part: the leads and their lineage, committed together."""
    with connect() as conn:
        conn.execute("SELECT set_config('lock_timeout', %s, true)", (WORKER_LOCK_TIMEOUT,))
        return insert_new_singles(conn, upload_id, rows, leads, ingest)


def merge_upload(conn: psycopg.Connection, upload_id: str, connect: Connect | None = None, *,
                 workers: int = INSERT_WORKERS, parallel_min_rows: int = PARALLEL_MIN_ROWS,
                 part_rows: int = PART_ROWS) -> MergeCounts:
    """Merge one upload's staged rows into leads, inside the caller's transaction.

    With `connect` (a committed-on-exit connection factory) and at least `parallel_min_rows` new
    single rows, `workers` connections insert parts of those rows while this one applies the rest
    and then takes parts too. Each worker's part commits its leads with their lineage, so after a
    failure anywhere every row is merged with its lineage or not at all, and a re-run merges the
    rest. The staged rows must be committed.
    """
    started = time.perf_counter()
    lock_upload(conn, upload_id)  # staging of this upload waits for the merge, and the other way round
    conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (MERGE_LOCK_KEY,))
    # the fold sorts every duplicate row of the upload (~290k wide rows at 1M): in memory, not on disk
    conn.execute("SET LOCAL work_mem = '256MB'")
    leads, ingest = catalog(conn)
    lap = Laps()
    rekeyed_rows = resolve_address_identity(conn, upload_id)
    lap("resolve_addresses_s")
    staged = build_work_table(conn, upload_id)
    lap("match_keys_s")
    singles = find_single_rows(conn) if staged else []
    lap("find_singles_s")
    pool = None
    if connect is not None and workers > 0 and len(singles) >= parallel_min_rows:
        # the address resolution above rewrote staged keys of linked rows only: what the workers
        # read of the single rows is what staging committed
        parts = SingleRowParts(singles, part_rows)
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="merge-insert")
        jobs = [pool.submit(insert_parts, parts, lambda rows: _insert_committed(connect, upload_id, rows, leads, ingest))
                for _ in range(workers)]
        singles_started = time.perf_counter()
    else:
        singles_inserted = insert_new_singles(conn, upload_id, singles, leads, ingest)
        lap("new_singles_s")
    try:
        rounds = group_linked_rows(conn) if staged else 0
        if not staged:
            conn.execute("CREATE TEMP TABLE merge_rows ON COMMIT DROP AS SELECT *, 0 AS round FROM merge_keys")
        lap("group_s")
        totals = {"inserted": 0, "updated": 0, "conflicts": 0, "unchanged": 0}
        apply_lap = Laps()  # where apply_s goes, summed over rounds
        # rows folded into an earlier row of their group (round 0) are merged in batch
        in_batch = conn.execute("SELECT count(*) FROM merge_rows WHERE round = 0").fetchone()[0]
        for r in range(1, rounds + 1):
            counts = apply_round(conn, upload_id, r, leads, ingest, in_batch if r == 1 else 0, apply_lap)
            for k in totals:
                totals[k] += counts[k]
            if r > 1:
                in_batch += counts["rows"]
        lap("apply_s")
        rekeyed_leads = rekey_touched_leads(conn, upload_id)
        lap("rekey_s")
        if pool:
            # the parts the workers have not taken yet, then theirs (a worker's error fails the merge)
            singles_inserted = insert_parts(parts, lambda rows: insert_new_singles(conn, upload_id, rows, leads, ingest))
            singles_inserted += sum(job.result() for job in jobs)
            lap("singles_tail_s")
            apply_lap.seconds["new_singles_s"] = time.perf_counter() - singles_started
    finally:
        if pool:
            parts.failed = True  # on an error here, workers take no more parts
            pool.shutdown(wait=True)  # never leave a worker writing after the merge has returned
    totals["inserted"] += singles_inserted
    conn.execute("DROP TABLE IF EXISTS merge_keys, merge_rows")
    return MergeCounts(
        staged=staged,
        inserted=totals["inserted"],
        updated=totals["updated"],
        unchanged=totals["unchanged"],
        merged_in_batch=in_batch,
        conflicts=totals["conflicts"],
        rounds=rounds,
        address_variants_resolved=rekeyed_rows,
        leads_rekeyed=rekeyed_leads,
        steps={**lap.rounded(), **apply_lap.rounded()},
        seconds=round(time.perf_counter() - started, 3),
    )
