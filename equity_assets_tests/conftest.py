"""Shared fixtures: a real PostgreSQL database per test session.

The embedded cluster (`equity db start`) hosts a fresh database `equity_test_<random>` with
all migrations applied; it is dropped at the end. Set EQUITY_TEST_ADMIN_URL to a superuser DSN
(database `postgres`) to run against another server instead.
"""

from __future__ import annotations

import os

# The tests' campaign calendar is fixed (their dates are from 2026); a checkout's own first day
# (recorded by `equity db start`) must not decide which of their partitions exist.
os.environ["EQUITY_CAMPAIGN_START"] = "2026-03-02"
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from equity_assets.db.cluster import APP_USER, EmbeddedCluster, migrate_and_grant
from equity_assets.db.resources import PostgresResource

pytest_plugins = ["equity_assets_tests.fixtures.sandbox", "equity_assets_tests.fixtures.browser"]

# Tables the tests may fill; truncated between tests that ask for a clean database.
DATA_TABLES = (
    "billing_events", "invoices", "calls", "lead_number_assignments", "broker_phone_numbers",
    "email_replies", "webhook_events", "campaign_sends", "lead_consent_audit", "consent_tokens",
    "suppression_list", "pipeline_events", "pipeline_event_keys", "pipeline_dlq", "lead_key_conflicts", "lead_sources",
    "ingest_dropped_values", "lead_duplicate_candidates", "lead_manual_merges",
    "leads_staging", "leads", "ingest_replay_guard", "uploads", "brokers", "gateway_rate_limits",
    "contactable_leads", "contactable_recheck_emails", "broker_notifications", "invoice_revisions",
    "broker_cap_requests", "broker_sessions", "broker_credentials", "broker_notify_secrets", "alert_state",
)


@dataclass(frozen=True)
class TestDatabase:
    admin_dsn: str  # superuser / schema owner: sees through RLS only via roles it sets
    app_dsn: str  # the pipeline's login role (member of service_role)
    name: str


def with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{database}"))


@contextmanager
def scratch_database(test_db: TestDatabase, prefix: str) -> Iterator[tuple[str, str]]:
    """(name, admin DSN) of a new empty database on the test server, dropped afterwards."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    server_admin = with_database(test_db.admin_dsn, "postgres")
    with psycopg.connect(server_admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield name, with_database(test_db.admin_dsn, name)
    finally:
        with psycopg.connect(server_admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def test_db() -> Iterator[TestDatabase]:
    override = os.environ.get("EQUITY_TEST_ADMIN_URL")
    if override:
        server_admin, app_login = override, None
    else:
        cluster = EmbeddedCluster()
        cluster.start()
        server_admin, app_login = cluster.dsn("postgres", admin=True), cluster.dsn("postgres")
    name = f"equity_test_{secrets.token_hex(4)}"
    with psycopg.connect(server_admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    admin_dsn = with_database(server_admin, name)
    migrate_and_grant(admin_dsn, APP_USER if app_login else urlsplit(server_admin).username)
    yield TestDatabase(admin_dsn, with_database(app_login or server_admin, name), name)
    with psycopg.connect(server_admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def clean_db(test_db: TestDatabase) -> TestDatabase:
    """The test database with every data table emptied (append-only guards bypassed for cleanup)."""
    with psycopg.connect(test_db.admin_dsn, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute(sql.SQL("TRUNCATE {} CASCADE").format(sql.SQL(", ").join(map(sql.Identifier, DATA_TABLES))))
        # the contactable set is empty again: its next refresh is a full rebuild, as on a new database
        conn.execute("UPDATE contactable_refresh_state SET watermark = NULL, size = 0, refreshed_at = NULL")
    return test_db


@pytest.fixture
def admin_conn(clean_db: TestDatabase) -> Iterator[psycopg.Connection]:
    """A connection as the schema owner, in a transaction rolled back at the end."""
    with psycopg.connect(clean_db.admin_dsn) as conn:
        yield conn
        conn.rollback()


@pytest.fixture
def postgres(clean_db: TestDatabase) -> Iterator[PostgresResource]:
    """The pipeline's resource pointed at the test database."""
    resource = PostgresResource(dsn=clean_db.app_dsn)
    yield resource
    resource.close()
