"""Fixtures of the operator tests (a real Dagster deployment on the test cluster)."""

from __future__ import annotations

import pytest

from ..conftest import scratch_database


@pytest.fixture
def dagster_storage(test_db):
    """A Dagster instance database of its own on the test cluster, dropped afterwards."""
    with scratch_database(test_db, "dagster_op") as (_, dsn):
        yield dsn.replace("postgresql://", "postgresql+psycopg2://", 1)
