"""Crashes at the worst moment, on a PostgreSQL server of the scenario's own (never a shared one).

- ``ingest_crash``: `equity ingest <file>` runs in a child process; once its merge holds the lock
  on ``leads``, either the child (``kill="run"``) or every process of the database server
  (``kill="database"``) gets SIGKILL. The server is restarted (crash recovery: the UNLOGGED staging
  table comes back empty), the upload's merge is run again as a re-execution would run it, and the
  operator runs the same command once more. Then every data row of the file must be a lead's
  lineage or a dead letter in both uploads (else it is lost), no two leads may share a key, row *r*
  of both uploads must have reached the same lead, and no lead may exist that no row reached.
- ``kill_database``: SIGKILL to the postmaster and every process under it, as the OOM killer or
  a power cut would leave it (``pg_ctl stop -m immediate`` at least asks politely).
"""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
import psycopg

from ..db.cluster import EmbeddedCluster
from ..db.resources import PostgresResource
from ..ingest.assets import deduped_leads
from ..ingest.checks import DUPLICATE_KEYS_SQL
from ..ingest.definitions import defs as ingest_defs
from ..ingest.merge import MERGE_LOCK_KEY
from ..ingest.partitions import uploads_partitions
from ..ingest.synthetic import write_propstream_csv
from .common import fresh_database, process_children

SHOW = 10
# the merge holds its advisory lock (a single bigint key: pg_locks shows its low 32 bits as objid)
_MERGE_LOCK = """
SELECT l.pid FROM pg_locks l
WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
  AND l.objid = (hashtext(%s)::bigint & 4294967295)::oid
"""


@contextmanager
def own_cluster() -> Iterator[EmbeddedCluster]:
    """A PostgreSQL server of this scenario alone (own data dir, own port), removed afterwards."""
    home = Path(tempfile.mkdtemp(prefix="equity_crash_"))
    cluster = EmbeddedCluster(home=home)
    try:
        cluster.start()
        yield cluster
    finally:
        state = cluster.load_state()
        try:
            cluster.stop(mode="immediate")
        finally:
            if state is not None:
                shutil.rmtree(state.cluster_dir, ignore_errors=True)
            shutil.rmtree(home, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie is dead, only not yet reaped
    except FileNotFoundError:
        return False


def kill_database(cluster: EmbeddedCluster, timeout_s: float = 30.0) -> list[int]:
    """SIGKILL the cluster's postmaster and all its processes; returns their pids once all are gone."""
    state = cluster.load_state()
    if state is None:
        raise RuntimeError("the scenario's cluster has no state")
    postmaster = int((state.data_dir / "postmaster.pid").read_text().split()[0])
    pids, queue = [], [postmaster]
    while queue:  # the whole tree first: a killed postmaster's children are re-parented
        pid = queue.pop()
        pids.append(pid)
        queue.extend(process_children(pid))
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout_s
    # Gone, and the postmaster reaped too: until then `pg_ctl status` still calls the server running.
    while any(map(_alive, pids)) or cluster.is_running():
        if time.monotonic() > deadline:
            raise TimeoutError("database processes survived SIGKILL")
        time.sleep(0.05)
    return pids


def data_rows(path: Path) -> int:
    """Data rows of a CSV, counted with the standard library (not our parser)."""
    with path.open(newline="", encoding="utf-8-sig") as f:
        return sum(1 for _ in csv.reader(f)) - 1


def _equity(*args: str) -> list[str]:
    return [str(Path(sys.executable).parent / "equity"), *args]


def _wait_for_merge(admin_dsn: str, child: subprocess.Popen, timeout_s: float) -> bool:
    """True once the child's merge holds its lock on ``leads``; False if the child ended first."""
    deadline = time.monotonic() + timeout_s
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        while child.poll() is None and time.monotonic() < deadline:
            if conn.execute(_MERGE_LOCK, (MERGE_LOCK_KEY,)).fetchone():
                return True
            time.sleep(0.02)
    return False


def _upload_accounts(conn: psycopg.Connection, upload_id: str, file_rows: int) -> dict[str, Any]:
    lineage = dict(conn.execute("SELECT row_number, lead_id::text FROM lead_sources WHERE upload_id = %s",
                                (upload_id,)).fetchall())
    rejected = {r[0] for r in conn.execute(
        "SELECT DISTINCT row_number FROM pipeline_dlq WHERE source_ref = %s AND row_number IS NOT NULL",
        (upload_id,))}
    status = conn.execute("SELECT status FROM uploads WHERE id = %s", (upload_id,)).fetchone()[0]
    lost = sorted(set(range(1, file_rows + 1)) - set(lineage) - rejected)
    return {"status": status, "lineage": lineage, "rejected": rejected, "lost": lost}


@contextmanager
def server_of_our_own(cluster: EmbeddedCluster | None) -> Iterator[EmbeddedCluster]:
    """``cluster`` when the caller has one of its own already, else a new one for this scenario."""
    if cluster is not None:
        yield cluster
    else:
        with own_cluster() as new:
            yield new


def _wait_for_committed_part(admin_dsn: str, child: subprocess.Popen, timeout_s: float) -> bool:
    """True once some rows of the merging upload have lineage (a worker's part committed) while the
    merge still holds its lock; False if the merge ended first."""
    deadline = time.monotonic() + timeout_s
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        while child.poll() is None and time.monotonic() < deadline:
            if conn.execute("SELECT EXISTS (SELECT 1 FROM lead_sources)").fetchone()[0]:
                return bool(conn.execute(_MERGE_LOCK, (MERGE_LOCK_KEY,)).fetchone())
            time.sleep(0.01)
    return False


def ingest_crash(kill: str = "run", rows: int = 20_000, *, kill_delay_s: float = 0.3, seed: int = 7,
                 timeout_s: float = 600.0, cluster: EmbeddedCluster | None = None,
                 after_committed_part: bool = False) -> dict[str, Any]:
    """SIGKILL the ingest run (``kill="run"``) or the database (``"database"``) mid-merge; re-run; account.

    With ``after_committed_part`` the kill waits until the merge's insert worker has committed a
    part of the new rows (an upload big enough for the worker: ≥ 50,000 new single rows).
    ``cluster`` must be a server of the caller's own (see ``own_cluster``): it may be killed.
    """
    if kill not in ("run", "database"):
        raise ValueError("kill is 'run' or 'database'")
    with server_of_our_own(cluster) as cluster, fresh_database("equity_rel_ingest", cluster) as (admin, app), \
            tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "upload.csv"
        write_propstream_csv(path, rows, seed=seed)
        file_rows = data_rows(path)
        env = {**os.environ, "EQUITY_DATABASE_URL": app}
        child = subprocess.Popen(_equity("ingest", str(path), "--json"), env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        in_merge = _wait_for_merge(admin, child, timeout_s)
        if in_merge and after_committed_part:
            in_merge = _wait_for_committed_part(admin, child, timeout_s)
        elif in_merge:
            time.sleep(kill_delay_s)
        still_merging = child.poll() is None and bool(_merge_holder(admin))
        killed: list[int] = []
        if kill == "run":
            child.kill()
            killed = [child.pid]
        else:
            killed = kill_database(cluster)
        try:
            child_exit = child.wait(timeout=120)
        except subprocess.TimeoutExpired:  # stuck waiting for a server that is gone: the operator's Ctrl+C
            child.kill()
            child_exit = child.wait()
        if kill == "database":
            cluster.start()  # crash recovery; UNLOGGED tables come back empty
        with psycopg.connect(app) as conn:
            conn.execute("SET ROLE service_role")
            crashed_upload = conn.execute("SELECT id::text FROM uploads ORDER BY received_at LIMIT 1").fetchone()[0]
            after_crash = conn.execute(
                """SELECT (SELECT count(*) FROM leads), (SELECT count(*) FROM leads_staging),
                          (SELECT status FROM uploads WHERE id = %s), (SELECT count(*) FROM lead_sources)""",
                (crashed_upload,)).fetchone()
        rerun = _rerun_merge(app, crashed_upload)
        again = subprocess.run(_equity("ingest", str(path), "--json"), env=env, capture_output=True, text=True,
                               timeout=timeout_s)
        with psycopg.connect(app) as conn:
            conn.execute("SET ROLE service_role")
            second_upload = conn.execute("SELECT id::text FROM uploads WHERE id <> %s", (crashed_upload,)
                                         ).fetchone()[0]
            first = _upload_accounts(conn, crashed_upload, file_rows)
            second = _upload_accounts(conn, second_upload, file_rows)
            key_dupes = {k: v for k, v in conn.execute(DUPLICATE_KEYS_SQL).fetchall() if v}
            leads = conn.execute("SELECT count(*) FROM leads").fetchone()[0]
            unreached = [r[0] for r in conn.execute(
                "SELECT id::text FROM leads l WHERE NOT EXISTS (SELECT 1 FROM lead_sources s WHERE s.lead_id = l.id) "
                "LIMIT %s", (SHOW,))]
    split = sorted(r for r in set(first["lineage"]) & set(second["lineage"])
                   if first["lineage"][r] != second["lineage"][r])
    lost = [("first", r) for r in first["lost"]] + [("second", r) for r in second["lost"]]
    return {
        "injected": {"signal": "SIGKILL", "target": "equity ingest" if kill == "run" else "postgres (every process)",
                     "processes_killed": len(killed), "file_rows": file_rows, "merge_held_its_lock": in_merge,
                     "kill_delay_s": kill_delay_s, "still_merging_at_kill": still_merging},
        "found": {"killed_mid_merge": in_merge and still_merging and after_crash[2] != "merged",
                  "child_exit_code": child_exit,
                  "after_crash": {"leads": after_crash[0], "staged_rows": after_crash[1], "status": after_crash[2],
                                  "merged_rows": after_crash[3]},
                  "rerun": rerun, "second_ingest_exit_code": again.returncode,
                  "second_ingest_error_tail": again.stderr[-400:] if again.returncode else "",
                  "statuses": [first["status"], second["status"]], "leads": leads,
                  "lineage_rows": [len(first["lineage"]), len(second["lineage"])],
                  "rejected_rows": [len(first["rejected"]), len(second["rejected"])],
                  "lost_rows": lost[:SHOW], "key_duplicates": key_dupes,
                  "rows_reaching_different_leads": split[:SHOW], "leads_no_row_reached": unreached},
        "lost_rows": len(lost),
        "duplicate_leads": sum(key_dupes.values()) + len(split) + len(unreached),
    }


def _merge_holder(admin_dsn: str) -> list[int]:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        return [r[0] for r in conn.execute(_MERGE_LOCK, (MERGE_LOCK_KEY,))]


def _rerun_merge(app_dsn: str, upload_id: str) -> dict[str, Any]:
    """Re-execute the crashed upload's merge (with its checks) as a re-execution from failure does."""
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(uploads_partitions.name, [upload_id])
    postgres = PostgresResource(dsn=app_dsn, application_name="equity_crash_rerun")
    try:
        result = dg.materialize([deduped_leads, *ingest_defs.asset_checks], selection=[deduped_leads],
                                partition_key=upload_id, instance=instance, resources={"postgres": postgres},
                                raise_on_error=False)
    finally:
        postgres.close()
    merged = {}
    if result.success:
        merged = {k: v.value for k, v in result.asset_materializations_for_node("deduped_leads")[0].metadata.items()}
    return {"success": result.success, "restaged_after_loss": merged.get("restaged_after_loss"),
            "inserted": merged.get("inserted"),
            "checks": {c.check_name: c.passed for c in result.get_asset_check_evaluations()}}
