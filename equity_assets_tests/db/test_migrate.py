"""Migration runner against a real, empty database."""

import shutil

import psycopg
import pytest

from equity_assets.db.migrate import REWORDED, SQL_DIR, MigrationError, load_migrations, migrate, migration_status
from equity_assets_tests.conftest import scratch_database


@pytest.fixture
def empty_db(test_db):
    """A brand-new database on the same server, dropped afterwards."""
    with scratch_database(test_db, "equity_empty") as (_, dsn):
        yield dsn


def test_migrations_apply_on_empty_database_then_reapply_as_noop(empty_db):
    names = [m.name for m in load_migrations()]
    assert migrate(empty_db) == names
    assert migrate(empty_db) == []
    with psycopg.connect(empty_db) as conn:
        recorded = [r[0] for r in conn.execute("SELECT name FROM schema_migrations ORDER BY name")]
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert recorded == names
    design_tables = {
        "brokers", "leads", "leads_staging", "uploads", "ingest_replay_guard", "pipeline_dlq",
        "pipeline_events", "verification_code_map", "consent_tokens", "lead_consent_audit",
        "campaign_sends", "lead_sources", "webhook_events", "email_replies", "suppression_list",
        "broker_phone_numbers", "lead_number_assignments", "calls", "billing_events", "invoices",
        "schema_migrations",
    }
    assert design_tables <= tables
    assert migration_status(empty_db) == {"applied": names, "pending": []}


def test_edited_applied_migration_is_refused(empty_db, tmp_path):
    sql_dir = tmp_path / "sql"
    shutil.copytree(SQL_DIR, sql_dir)
    migrate(empty_db, sql_dir)
    first = sorted(sql_dir.iterdir())[0]
    first.write_text(first.read_text() + "\n-- edited after it was applied\n")
    with pytest.raises(MigrationError, match="edited"):
        migrate(empty_db, sql_dir)


def test_a_database_that_applied_a_reworded_file_moves_to_the_new_checksum(empty_db):
    migrate(empty_db)
    name, old = next((name, min(olds)) for name, olds in REWORDED.items())
    with psycopg.connect(empty_db) as conn:
        conn.execute("UPDATE schema_migrations SET checksum = %s WHERE name = %s", (old, name))
    assert migrate(empty_db) == []
    current = next(m.checksum for m in load_migrations() if m.name == name)
    with psycopg.connect(empty_db) as conn:
        assert conn.execute("SELECT checksum FROM schema_migrations WHERE name = %s", (name,)).fetchone()[0] == current


def test_new_migration_file_is_applied_alone(empty_db, tmp_path):
    sql_dir = tmp_path / "sql"
    shutil.copytree(SQL_DIR, sql_dir)
    migrate(empty_db, sql_dir)
    (sql_dir / "9999_probe.sql").write_text("CREATE TABLE probe (id int);")
    assert migrate(empty_db, sql_dir) == ["9999_probe.sql"]


def test_failed_migration_rolls_back_and_is_not_recorded(empty_db, tmp_path):
    sql_dir = tmp_path / "sql"
    shutil.copytree(SQL_DIR, sql_dir)
    migrate(empty_db, sql_dir)
    (sql_dir / "9998_broken.sql").write_text("CREATE TABLE half_done (id int); SELECT no_such_function();")
    with pytest.raises(psycopg.errors.UndefinedFunction):
        migrate(empty_db, sql_dir)
    with psycopg.connect(empty_db) as conn:
        assert conn.execute("SELECT to_regclass('half_done')").fetchone()[0] is None
        assert not conn.execute("SELECT 1 FROM schema_migrations WHERE name = '9998_broken.sql'").fetchone()


def test_badly_named_file_is_refused(tmp_path):
    (tmp_path / "create-things.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="0001_name.sql"):
        load_migrations(tmp_path)
