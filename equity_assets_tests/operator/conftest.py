"""Fixtures of the operator tests (a real Dagster deployment on the test cluster)."""

from __future__ import annotations

import secrets

import psycopg
import pytest
from psycopg import sql

from ..conftest import with_database


@pytest.fixture
def dagster_storage(test_db):
    """A Dagster instance database of its own on the test cluster, dropped afterwards."""
    name = f"dagster_op_{secrets.token_hex(4)}"
    server_admin = with_database(test_db.admin_dsn, "postgres")
    with psycopg.connect(server_admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield with_database(test_db.admin_dsn, name).replace("postgresql://", "postgresql+psycopg2://", 1)
    with psycopg.connect(server_admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
