"""The webhooks' rate limit: counted in memory, settled with the shared row in batches, one budget
for every gateway process — and VAPI end-of-call reports never refused."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from contextlib import asynccontextmanager
from datetime import timedelta

import psycopg
import pytest
import requests

from equity_assets.gateway.ratelimit import SharedRateLimiter
from equity_assets.gateway.webhooks import WebhookSettings

VAPI_SECRET = "vapi-hook-secret"


def vapi(call_id: str, kind: str) -> bytes:
    return json.dumps({"message": {"type": kind, "call": {"id": call_id}, "timestamp": 1764424920000}}).encode()


def test_end_of_call_reports_are_exempt_from_the_webhook_rate_limit(start_gateway, monkeypatch):
    monkeypatch.setenv("EQUITY_VAPI_WEBHOOK_SECRETS", VAPI_SECRET)
    monkeypatch.delenv("EQUITY_VAPI_WEBHOOK_AUTH", raising=False)
    gateway = start_gateway(webhooks=WebhookSettings(rate_limit_per_window=2))
    headers = {"Authorization": f"Bearer {VAPI_SECRET}", "Content-Type": "application/json"}

    def post(body: bytes) -> int:
        return requests.post(f"{gateway.url}/v1/webhooks/vapi", data=body, headers=headers, timeout=10).status_code

    updates = [post(vapi(f"s{i}", "status-update")) for i in range(3)]
    reports = [post(vapi(f"c{i}", "end-of-call-report")) for i in range(10)]  # a burst of calls ending at once
    assert updates == [200, 200, 429]
    assert reports == [200] * 10
    stored = gateway.query("SELECT event_type, count(*) FROM webhook_events GROUP BY 1 ORDER BY 1")
    assert stored == [("end-of-call-report", 10), ("status-update", 2)]


@pytest.fixture
def async_conn_factory(gateway_db):
    """An async connection factory on the test database that counts how often it is opened."""
    opened = itertools.count()
    counts = {"opened": 0}

    @asynccontextmanager
    async def connect():
        counts["opened"] = next(opened) + 1
        async with await psycopg.AsyncConnection.connect(gateway_db.app_dsn, autocommit=True) as conn:
            await conn.execute("SET ROLE service_role")
            yield conn

    return connect, counts


def test_two_processes_share_one_budget_while_settling_in_batches(async_conn_factory, gateway_db):
    connect, counts = async_conn_factory
    limit, requests_each = 300, 400
    # Two limiters = two gateway processes: only the database row connects their counts.
    first, second = (SharedRateLimiter("webhooks:", limit=limit, window=timedelta(minutes=1)) for _ in range(2))

    async def traffic() -> list[bool]:
        allowed = []
        for _ in range(requests_each):
            for limiter in (first, second):
                allowed.append((await limiter.hit("198.51.100.9", connect)).allowed)
        return allowed

    allowed = asyncio.run(traffic())
    admitted = sum(allowed)
    # Near the limit every request settles, so the overshoot is a handful, not a batch per process.
    assert limit <= admitted <= limit + 4, admitted
    assert not any(allowed[-100:])
    # Far from the limit requests are counted in memory: far fewer settlements than requests.
    assert counts["opened"] < admitted / 3, counts
    with psycopg.connect(gateway_db.admin_dsn) as conn:
        hits = conn.execute("SELECT hits FROM gateway_rate_limits WHERE client_key = 'webhooks:198.51.100.9'"
                            ).fetchone()[0]
    assert hits >= limit


def test_a_limiter_refuses_locally_once_over_and_reopens_with_the_next_window(async_conn_factory):
    connect, counts = async_conn_factory
    now = [1000.0]
    limiter = SharedRateLimiter("webhooks:", limit=3, window=timedelta(seconds=2), clock=lambda: now[0])

    async def hits(n: int) -> list[tuple[bool, bool]]:
        return [((d := await limiter.hit("203.0.113.5", connect)).allowed, d.first_rejection) for _ in range(n)]

    first = asyncio.run(hits(6))
    assert first == [(True, False)] * 3 + [(False, True), (False, False), (False, False)]
    settled = counts["opened"]
    assert settled == 4  # the refusals after the first cost no database round trip
    # The window ends (by the database's clock too): counting starts again.
    time.sleep(2.1)
    now[0] += 2.1
    assert asyncio.run(hits(1)) == [(True, False)]
