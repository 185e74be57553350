"""Campaign fixtures: a clean database including the campaign's own tables, the consent secret,
a connection for building data, and the campaign definitions wired to the test database and a
sandbox."""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg
import psycopg
import pytest

from equity_assets.db.resources import PostgresResource
from equity_assets_tests.conftest import TestDatabase
# Scoring and assignment run on verified leads: the verify fixtures build them.
from equity_assets_tests.verify.conftest import candidates, insert_leads, query, run_verify  # noqa: F401

from .helpers import definitions, instantly

SECRET = "test-consent-secret-0123456789abcdef"


@pytest.fixture(autouse=True)
def consent_secret(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("EQUITY_CONSENT_SECRET", SECRET)
    return SECRET


@pytest.fixture
def campaign_db(clean_db: TestDatabase) -> TestDatabase:
    """`clean_db` plus the contactable set and its bookkeeping reset (not in the shared table list)."""
    with psycopg.connect(clean_db.admin_dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE contactable_leads, contactable_recheck_emails")
        conn.execute("UPDATE contactable_refresh_state SET watermark = NULL, size = 0, refreshed_at = NULL")
    return clean_db


@pytest.fixture
def db(campaign_db: TestDatabase) -> Iterator[psycopg.Connection]:
    """Autocommit connection as the schema owner, for building data and reading results."""
    with psycopg.connect(campaign_db.admin_dsn, autocommit=True) as conn:
        yield conn


@pytest.fixture
def pipeline_postgres(campaign_db: TestDatabase) -> Iterator[PostgresResource]:
    resource = PostgresResource(dsn=campaign_db.app_dsn)
    yield resource
    resource.close()


@pytest.fixture
def campaign(pipeline_postgres: PostgresResource, sandbox_url: str) -> dg.Definitions:
    """Campaign definitions against the test database and a fresh sandbox."""
    return definitions(pipeline_postgres, instantly(sandbox_url))
