"""A PostgreSQL crash between staged_leads and deduped_leads loses no upload.

`leads_staging` is UNLOGGED: an unclean restart empties it. These tests stop a real server with
`pg_ctl stop -m immediate` (a cluster of the test's own, never the shared one) or empty staging
directly, and show the merge stages the file again, or fails loudly, instead of merging nothing.
"""

import csv
import shutil
import uuid

import dagster as dg
import psycopg
import pytest

from equity_assets.db.cluster import EmbeddedCluster
from equity_assets.db.resources import PostgresResource
from equity_assets.ingest.assets import deduped_leads, staged_leads
from equity_assets.ingest.checks import lineage_accounts, no_duplicate_lead_keys, staged_rows_accounted_for
from equity_assets.ingest.partitions import uploads_partitions
from equity_assets.ingest.synthetic import write_propstream_csv

from .test_ingest_assets import HEADER, register_upload

BAD_ROW = "1 Bad Row Rd,,Nowhere,ZZZ,999999,,,,,,,not-money,abc,13/45/2024"


def data_rows(path) -> int:
    """Data rows of a CSV counted with the standard library, not with our parser."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        return sum(1 for _ in csv.reader(f)) - 1


def materialize(postgres, upload_id, assets, instance, raise_on_error=True):
    return dg.materialize([staged_leads, deduped_leads, staged_rows_accounted_for, no_duplicate_lead_keys],
                          selection=assets, partition_key=upload_id, instance=instance,
                          resources={"postgres": postgres}, raise_on_error=raise_on_error)


def checks(result) -> dict[str, bool]:
    return {c.check_name: c.passed for c in result.get_asset_check_evaluations()}


def accounts(conn, upload_id):
    """(staged, lineage rows, distinct rejected row numbers, status) of one upload."""
    return conn.execute(
        """SELECT (SELECT count(*) FROM leads_staging WHERE upload_id = %(u)s),
                  (SELECT count(*) FROM lead_sources WHERE upload_id = %(u)s),
                  (SELECT count(DISTINCT row_number) FROM pipeline_dlq WHERE source_ref = %(u)s::text
                     AND row_number IS NOT NULL),
                  (SELECT status FROM uploads WHERE id = %(u)s)""",
        {"u": upload_id},
    ).fetchone()


@pytest.fixture
def own_cluster(tmp_path):
    """A PostgreSQL server of this test alone (own data dir, own port), removed afterwards."""
    cluster = EmbeddedCluster(home=tmp_path / "crash_home")
    cluster.start()
    state = cluster.load_state()
    yield cluster
    cluster.stop(mode="immediate")
    shutil.rmtree(state.cluster_dir, ignore_errors=True)


def test_immediate_shutdown_between_staging_and_merge_loses_nothing(own_cluster, tmp_path):
    path = tmp_path / "upload.csv"
    truth = write_propstream_csv(path, 3000, seed=11)
    with open(path, "a", encoding="utf-8") as f:
        f.write(BAD_ROW + "\n")
    file_rows = data_rows(path)
    assert file_rows == 3001

    instance = dg.DagsterInstance.ephemeral()
    postgres = PostgresResource(dsn=own_cluster.dsn())
    try:
        with postgres.connection() as conn:
            upload_id = register_upload(conn, path)
        instance.add_dynamic_partitions(uploads_partitions.name, [upload_id])
        materialize(postgres, upload_id, [staged_leads], instance)
        with postgres.connection() as conn:
            staged, lineage, rejected, status = accounts(conn, upload_id)
        assert (staged + rejected, lineage, status) == (file_rows, 0, "staged") and rejected >= 1
    finally:
        postgres.close()

    # the worst moment: the server dies after staging committed, before the merge ran
    assert own_cluster.stop(mode="immediate")
    assert not own_cluster.is_running()
    own_cluster.start()

    postgres = PostgresResource(dsn=own_cluster.dsn())
    try:
        with postgres.connection() as conn:
            assert accounts(conn, upload_id)[:2] == (0, 0), "the crash should have emptied UNLOGGED staging"
        result = materialize(postgres, upload_id, [deduped_leads], instance)
        merged = {k: v.value for k, v in result.asset_materializations_for_node("deduped_leads")[0].metadata.items()}
        assert merged["restaged_after_loss"] is True
        assert checks(result) == {"staged_rows_accounted_for": True, "no_duplicate_lead_keys": True}
        with postgres.connection() as conn:
            staged, lineage, rejected, status = accounts(conn, upload_id)
            lineage_rows = dict(conn.execute(
                "SELECT ls.row_number, ls.lead_id::text FROM lead_sources ls JOIN leads l ON l.id = ls.lead_id "
                "WHERE ls.upload_id = %s", (upload_id,)).fetchall())
            dlq_rows = {r[0] for r in conn.execute(
                "SELECT row_number FROM pipeline_dlq WHERE source_ref = %s AND row_number IS NOT NULL",
                (upload_id,))}
            restaged = conn.execute("SELECT count(*) FROM pipeline_events WHERE event_type = 'upload_restaged' "
                                    "AND upload_id = %s", (upload_id,)).fetchone()[0]
    finally:
        postgres.close()
    # every data row of the file is either a lead's lineage or a dead letter, exactly once
    assert status == "merged" and lineage + rejected == file_rows
    assert set(lineage_rows) | dlq_rows == set(range(1, file_rows + 1)) and not set(lineage_rows) & dlq_rows
    assert file_rows in dlq_rows  # the bad row, by its line
    assert restaged == 1
    clusters = [lineage_rows.get(i, f"rejected-{i}") for i in range(1, truth.rows + 1)]
    scores = truth.pairwise_scores(clusters)
    assert scores.precision >= 0.999 and scores.recall >= 0.99


def lose_staging(clean_db, upload_id):
    """What an unclean restart does to an UNLOGGED table, without restarting the shared server."""
    with psycopg.connect(clean_db.admin_dsn, autocommit=True) as conn:
        conn.execute("DELETE FROM leads_staging WHERE upload_id = %s", (upload_id,))


def small_upload(postgres, tmp_path):
    path = tmp_path / f"{uuid.uuid4().hex}.csv"
    path.write_text("\n".join([
        HEADER,
        "12 Elm St,,Derby,CT,06418,New Haven,P-1,Yes,Ann,Lee,,1000,10,03/15/2024",
        "14 Elm St,,Derby,CT,06418,New Haven,P-2,Yes,Bo,Kim,,2000,20,03/15/2024",
        BAD_ROW,
    ]) + "\n")
    with postgres.connection() as conn:
        upload_id = register_upload(conn, path)
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(uploads_partitions.name, [upload_id])
    return path, upload_id, instance


def test_lost_staging_with_the_file_gone_fails_loudly_and_is_not_marked_merged(postgres, clean_db, tmp_path):
    path, upload_id, instance = small_upload(postgres, tmp_path)
    materialize(postgres, upload_id, [staged_leads], instance)
    lose_staging(clean_db, upload_id)
    path.unlink()
    result = materialize(postgres, upload_id, [deduped_leads], instance, raise_on_error=False)
    assert not result.success
    failure = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"][0]
    assert "stored file is missing" in failure.event_specific_data.error.message
    with postgres.connection() as conn:
        assert accounts(conn, upload_id) == (0, 0, 1, "staged")
        assert conn.execute("SELECT count(*) FROM leads").fetchone()[0] == 0


def test_lineage_check_compares_with_the_file_not_with_staging(postgres, clean_db, tmp_path):
    # the old failure: an upload marked merged with nothing staged and nothing merged
    _, upload_id, instance = small_upload(postgres, tmp_path)
    materialize(postgres, upload_id, [staged_leads], instance)
    lose_staging(clean_db, upload_id)
    with postgres.connection() as conn:
        conn.execute("UPDATE uploads SET status = 'merged' WHERE id = %s", (upload_id,))
    with postgres.connection() as conn:
        evaluation = lineage_accounts(conn, upload_id)
        assert lineage_accounts(conn, None).passed is False  # every merged upload, too
    assert evaluation.passed is False
    assert evaluation.metadata["file_rows"].value == 3
    assert evaluation.metadata["lineage_plus_rejected"].value == 1


def test_merge_after_lost_staging_restages_from_the_file(postgres, clean_db, tmp_path):
    _, upload_id, instance = small_upload(postgres, tmp_path)
    materialize(postgres, upload_id, [staged_leads], instance)
    lose_staging(clean_db, upload_id)
    result = materialize(postgres, upload_id, [deduped_leads], instance)
    assert checks(result)["staged_rows_accounted_for"] is True
    with postgres.connection() as conn:
        assert accounts(conn, upload_id) == (2, 2, 1, "merged")
        assert sorted(r[0] for r in conn.execute("SELECT apn FROM leads")) == ["P-1", "P-2"]
    # a merged upload whose staging is lost later is done: nothing is staged or merged again
    lose_staging(clean_db, upload_id)
    again = materialize(postgres, upload_id, [deduped_leads], instance)
    meta = again.asset_materializations_for_node("deduped_leads")[0].metadata
    assert meta["restaged_after_loss"].value is False and meta["inserted"].value == 0
    assert checks(again)["staged_rows_accounted_for"] is True
