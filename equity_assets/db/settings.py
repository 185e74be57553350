"""Where the database is: `EQUITY_DATABASE_URL`, else the embedded cluster."""

from __future__ import annotations

import os

from .cluster import DAGSTER_DATABASE, EmbeddedCluster


def database_url() -> str:
    """DSN the pipeline connects with (read at call time, never at import)."""
    return os.environ.get("EQUITY_DATABASE_URL") or EmbeddedCluster().dsn()


def admin_database_url() -> str:
    """DSN that owns the schema and runs migrations."""
    return (
        os.environ.get("EQUITY_DATABASE_ADMIN_URL")
        or os.environ.get("EQUITY_DATABASE_URL")
        or EmbeddedCluster().dsn(admin=True)
    )


def dagster_storage_url() -> str:
    """SQLAlchemy URL for Dagster's own run/event storage (`DAGSTER_PG_URL` overrides).

    dagster-postgres needs the psycopg2 driver named explicitly: SQLAlchemy 2.1 defaults to
    psycopg 3, whose server-side binding breaks Dagster's `NOTIFY run_events, %s`.
    """
    override = os.environ.get("DAGSTER_PG_URL")
    if override:
        return override
    return EmbeddedCluster().dsn(DAGSTER_DATABASE).replace("postgresql://", "postgresql+psycopg2://", 1)
