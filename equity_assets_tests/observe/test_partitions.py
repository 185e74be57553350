"""pipeline_events by month: routing, the default partition, maintenance, archive, append-only."""

import dagster as dg
import psycopg
import pytest

from equity_assets.definitions import defs
from equity_assets.observe.assets import pipeline_events_default_partition_empty, pipeline_events_partitions
from equity_assets.observe.events import record_event


def partition_of(conn, key: str) -> str:
    return conn.execute("SELECT tableoid::regclass::text FROM pipeline_events WHERE idempotency_key = %s",
                        (key,)).fetchone()[0]


def maintain(postgres, **config) -> dict:
    result = dg.materialize([pipeline_events_partitions, pipeline_events_default_partition_empty],
                            resources={"postgres": postgres},
                            run_config={"ops": {"pipeline_events_partitions": {"config": config}}} if config else None)
    assert result.success
    md = {k: v.value for k, v in result.asset_materializations_for_node("pipeline_events_partitions")[0].metadata.items()}
    md["check_passed"] = result.get_asset_check_evaluations()[0].passed
    return md


def test_events_route_to_their_month_and_the_coming_months_exist(postgres):
    with postgres.connection() as conn:
        this_month, months = conn.execute(
            """SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY_MM'),
                      array_agg(c.relname::text ORDER BY c.relname) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
               WHERE i.inhparent = 'pipeline_events'::regclass""").fetchone()
        assert f"pipeline_events_{this_month}" in months and "pipeline_events_default" in months
        record_event(conn, "upload_received", idempotency_key="now")
        conn.execute("""INSERT INTO pipeline_events (event_type, idempotency_key, created_at)
                        VALUES ('upload_received', 'next', date_trunc('month', now()) + interval '1 month 2 days')""")
        next_month = conn.execute("SELECT to_char(now() + interval '1 month', 'YYYY_MM')").fetchone()[0]
        assert partition_of(conn, "now") == f"pipeline_events_{this_month}"
        assert partition_of(conn, "next") == f"pipeline_events_{next_month}"


def test_a_row_without_its_month_lands_in_the_default_and_maintenance_moves_it(postgres):
    with postgres.connection() as conn:
        conn.execute("""INSERT INTO pipeline_events (event_type, idempotency_key, created_at)
                        VALUES ('upload_received', 'far', now() + interval '20 months')""")
        assert partition_of(conn, "far") == "pipeline_events_default"
    before = maintain(postgres)
    assert (before["moved_from_default"], before["default_rows"], before["check_passed"]) == (1, 0, True)
    with postgres.connection() as conn:
        far = conn.execute("SELECT to_char(now() + interval '20 months', 'YYYY_MM')").fetchone()[0]
        assert partition_of(conn, "far") == f"pipeline_events_{far}"
        # the moved row kept its key: writing the same event again is still a no-op
        assert record_event(conn, "upload_received", idempotency_key="far") is False
        assert conn.execute("SELECT count(*) FROM pipeline_events WHERE idempotency_key = 'far'").fetchone()[0] == 1

    again = maintain(postgres)  # idempotent: nothing to create, move or archive
    assert (again["created"], again["archived"], again["moved_from_default"]) == (0, 0, 0)
    assert (again["partitions"], again["newest"]) == (before["partitions"], before["newest"])


def test_the_check_warns_while_rows_sit_in_the_default(postgres):
    with postgres.connection() as conn:
        conn.execute("""INSERT INTO pipeline_events (event_type, created_at)
                        VALUES ('upload_received', now() + interval '30 months')""")
    result = dg.materialize([pipeline_events_default_partition_empty], resources={"postgres": postgres},
                            selection=dg.AssetSelection.checks(pipeline_events_default_partition_empty))
    evaluation = result.get_asset_check_evaluations()[0]
    assert evaluation.passed is False and evaluation.metadata["default_rows"].value == 1
    assert maintain(postgres)["check_passed"] is True


def test_months_past_retention_move_to_the_archive_queryable_and_read_only(postgres, clean_db):
    with postgres.connection() as conn:
        conn.execute("""INSERT INTO pipeline_events (event_type, idempotency_key, created_at)
                        VALUES ('upload_received', 'old-1', '2019-03-10T12:00:00Z')""")
    done = maintain(postgres, retain_months=13)
    assert done["archived"] >= 1
    with postgres.connection() as conn:
        assert conn.execute("SELECT count(*) FROM pipeline_events WHERE created_at < '2020-01-01'").fetchone()[0] == 0
        assert conn.execute("SELECT idempotency_key FROM archive.pipeline_events_2019_03").fetchall() == [("old-1",)]
        # a late row of the archived month joins its archive on the next maintenance
        conn.execute("""INSERT INTO pipeline_events (event_type, idempotency_key, created_at)
                        VALUES ('upload_received', 'old-2', '2019-03-20T12:00:00Z')""")
    maintain(postgres)
    with postgres.connection() as conn:
        keys = conn.execute("SELECT idempotency_key FROM archive.pipeline_events_2019_03 ORDER BY 1").fetchall()
        assert keys == [("old-1",), ("old-2",)]
        assert conn.execute("SELECT to_regclass('public.pipeline_events_2019_03')").fetchone()[0] is None
    with psycopg.connect(clean_db.admin_dsn, autocommit=True) as owner:  # even the owner cannot rewrite it
        for statement in ("UPDATE archive.pipeline_events_2019_03 SET event_type = 'x'",
                          "DELETE FROM archive.pipeline_events_2019_03", "TRUNCATE archive.pipeline_events_2019_03"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
                owner.execute(statement)


@pytest.mark.parametrize("statement", [
    "UPDATE pipeline_events SET event_type = 'tampered'",
    "DELETE FROM pipeline_events",
    "TRUNCATE pipeline_events",
    "DELETE FROM {partition}",
    "UPDATE {partition} SET event_type = 'tampered'",
])
def test_events_stay_append_only_through_the_parent_and_each_partition(postgres, statement):
    with postgres.connection() as conn:
        record_event(conn, "upload_received", idempotency_key="kept")
        partition = partition_of(conn, "kept")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        with postgres.connection() as conn:
            conn.execute(statement.format(partition=partition))
    with postgres.connection() as conn:
        assert conn.execute("SELECT event_type FROM pipeline_events WHERE idempotency_key = 'kept'").fetchall() \
            == [("upload_received",)]


def test_maintenance_runs_daily_by_default():
    schedule = defs.resolve_schedule_def("pipeline_events_partitions_schedule")
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert schedule.job_name == "pipeline_events_partitions_job"
