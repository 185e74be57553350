"""Fixtures for the verify tests: provider resources on a live sandbox, lead insertion, a runner.

The sandbox decides outcomes from the input alone, so tests that need "an address Melissa
verifies" or "an owner BatchData flags as a litigator" ask the sandbox over HTTP (the same way
the pipeline does) and keep the first candidates that fit. The sandbox counters are reset
after such a search, so assertions on request counts see only the pipeline's calls.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import dagster as dg
import pytest
from psycopg import sql

from equity_assets.campaign.assets import scored_leads
from equity_assets.campaign.checks import queued_leads_are_assigned_and_contactable, scored_leads_match_schema
from equity_assets.db.resources import PostgresResource
from equity_assets.sandbox import VENDOR_PATHS, SandboxConfig, SandboxControl
from equity_assets.vendors.batchdata import BatchDataResource, SkipTraceInput, SkipTraceResult
from equity_assets.vendors.melissa import ContactInput, MelissaResource, PersonatorResult
from equity_assets.verify.assets import verified_leads
from equity_assets.verify.checks import (
    suppressed_channels_are_not_usable,
    verification_dead_letters,
    verified_leads_match_schema,
)

MELISSA_PATH = VENDOR_PATHS["melissa"]
BATCHDATA_PATH = VENDOR_PATHS["batchdata"]
KEYS = SandboxConfig()
CITIES = (("Tampa", "FL", "33602"), ("Houston", "TX", "77002"), ("Macon", "GA", "31201"), ("Akron", "OH", "44301"))

# Quick retries: the tests exercise the retry paths, they do not need to wait for them.
FAST_RETRIES = {"max_retries": 2, "backoff_factor": 0.01, "backoff_jitter": 0.01, "retry_after_max_s": 1}


@dataclass(frozen=True)
class Candidate:
    """A synthetic property + owner, and what the sandbox says about it."""

    address: str
    city: str
    state: str
    zip: str
    first_name: str
    last_name: str
    melissa: PersonatorResult
    batchdata: SkipTraceResult

    def lead(self, **extra: Any) -> dict[str, Any]:
        """Columns of a `leads` row for this property."""
        return {
            "property_address": self.address, "property_city": self.city, "property_state": self.state,
            "property_zip": self.zip, "first_name": self.first_name, "last_name": self.last_name, **extra,
        }


def melissa_resource(url: str, **overrides: Any) -> MelissaResource:
    return MelissaResource(**{"license_key": KEYS.melissa_license_key, "base_url": url, **FAST_RETRIES, **overrides})


def batchdata_resource(url: str, **overrides: Any) -> BatchDataResource:
    return BatchDataResource(**{"api_token": KEYS.batchdata_api_token, "base_url": url, **FAST_RETRIES, **overrides})


@pytest.fixture
def candidates(sandbox_url: str, sandbox_control: SandboxControl) -> Callable[..., list[Candidate]]:
    """``candidates(n, where=predicate, offset=0)``: the first ``n`` synthetic properties that fit."""

    def find(n: int, where: Callable[[Candidate], bool] = lambda c: True, *, offset: int = 0, pool: int = 400) -> list[Candidate]:
        people = [
            (f"{offset + i + 100} {('Maple', 'Cedar', 'Birch', 'Willow')[i % 4]} Avenue", *CITIES[i % len(CITIES)],
             ("Mary", "James", "Linda", "Robert")[i % 4], f"Owner{offset + i}")
            for i in range(pool)
        ]
        melissa = melissa_resource(sandbox_url)
        batchdata = batchdata_resource(sandbox_url)
        try:
            checked = melissa.verify_contacts(records=[
                ContactInput(record_id=str(i), address_line1=a, city=c, state=s, postal_code=z, first_name=f, last_name=l)
                for i, (a, c, s, z, f, l) in enumerate(people)
            ])
            traced = batchdata.skip_trace(requests=[
                SkipTraceInput(request_id=str(i), street=a, city=c, state=s, zip=z, first_name=f, last_name=l)
                for i, (a, c, s, z, f, l) in enumerate(people)
            ])
        finally:
            melissa.close()
            batchdata.close()
        found = [Candidate(*p, m, b) for p, m, b in zip(people, checked, traced, strict=True)]
        chosen = [c for c in found if where(c)][:n]
        assert len(chosen) == n, f"only {len(chosen)} of {pool} sandbox candidates fit"
        sandbox_control.reset()
        return chosen

    return find


@pytest.fixture
def email_verdicts(sandbox_url: str, sandbox_control: SandboxControl) -> Callable[[Sequence[str]], dict[str, tuple[str, ...]]]:
    """``email_verdicts(emails)``: Melissa's email codes for each address (asked over HTTP)."""

    def ask(emails: Sequence[str]) -> dict[str, tuple[str, ...]]:
        melissa = melissa_resource(sandbox_url)
        try:
            results = melissa.verify_contacts(records=[ContactInput(record_id=e, email=e) for e in emails])
        finally:
            melissa.close()
        sandbox_control.reset()
        return {r.record_id: r.email_codes for r in results}

    return ask


@pytest.fixture
def insert_leads(postgres: PostgresResource) -> Callable[[Sequence[dict[str, Any]]], list[str]]:
    """Insert `leads` rows (committed) and return their ids, in order."""

    def insert(rows: Sequence[dict[str, Any]]) -> list[str]:
        ids = []
        with postgres.connection() as conn:
            for row in rows:
                statement = sql.SQL("INSERT INTO leads ({}) VALUES ({}) RETURNING id::text").format(
                    sql.SQL(", ").join(map(sql.Identifier, row)), sql.SQL(", ").join(sql.Placeholder() * len(row))
                )
                ids.append(conn.execute(statement, list(row.values())).fetchone()[0])
        return ids

    return insert


@pytest.fixture
def query(postgres: PostgresResource) -> Callable[..., list[tuple[Any, ...]]]:
    """``query(sql, params)``: rows of a read through the pipeline's role."""

    def run(statement: str, params: Any = None) -> list[tuple[Any, ...]]:
        with postgres.connection() as conn:
            return conn.execute(statement, params).fetchall()

    return run


@dataclass
class VerifyRun:
    result: dg.ExecuteInProcessResult

    @property
    def success(self) -> bool:
        return self.result.success

    @property
    def metadata(self) -> dict[str, Any]:
        """verified_leads' metadata, plus scored_leads' (assignment counts) where keys do not clash."""
        (verified,) = self.result.asset_materializations_for_node("verified_leads")
        scored = self.result.asset_materializations_for_node("scored_leads")
        merged = {k: v.value for m in scored for k, v in m.metadata.items()}
        return merged | {k: v.value for k, v in verified.metadata.items()}

    def checks(self) -> dict[str, bool]:
        return {e.check_name: e.passed for e in self.result.get_asset_check_evaluations()}


@pytest.fixture
def run_verify(postgres: PostgresResource, sandbox_url: str) -> Iterator[Callable[..., VerifyRun]]:
    """``run_verify(config={...}, score={...}, melissa={...}, batchdata={...})``: materialize
    verified_leads and scored_leads (score + assignment) with their checks, as the pipeline does."""

    def run(config: dict[str, Any] | None = None, *, score: dict[str, Any] | None = None,
            melissa: dict[str, Any] | None = None, batchdata: dict[str, Any] | None = None,
            raise_on_error: bool = True) -> VerifyRun:
        result = dg.materialize(
            [verified_leads, scored_leads, queued_leads_are_assigned_and_contactable,
             suppressed_channels_are_not_usable, verification_dead_letters, verified_leads_match_schema,
             scored_leads_match_schema],
            resources={
                "postgres": postgres,
                "melissa": melissa_resource(sandbox_url, **(melissa or {})),
                "batchdata": batchdata_resource(sandbox_url, **(batchdata or {})),
            },
            run_config={"ops": {"verified_leads": {"config": config or {}}, "scored_leads": {"config": score or {}}}},
            instance=dg.DagsterInstance.ephemeral(),
            raise_on_error=raise_on_error,
        )
        return VerifyRun(result)

    yield run


def vendor_requests(control: SandboxControl, path: str) -> int:
    """Requests the sandbox received on a vendor path."""
    return control.stats()["requests"].get(f"POST {path}", 0)
