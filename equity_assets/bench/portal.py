"""`equity bench portal`: the broker API and invoicing at volume, on a throw-away database.

Seeds ``--leads`` leads spread over ``--brokers`` brokers (a billable appointment for about one lead in five,
all in one month), then measures ``GET /api/v1/leads`` (filtered, paged, under RLS, over real HTTP)
latency, and the time to build that month's invoices from scratch and to re-run it unchanged.
"""

from __future__ import annotations

import os
import secrets
import statistics
import time
from datetime import date
from typing import Any

import psycopg
import requests

from ..billing.invoices import build_month
from ..db.resources import PostgresResource
from ..gateway import GatewaySettings, running_gateway
from ..gateway.portal.identity import JWT_SECRET_ENV, issue_token
from .common import fresh_database

OPTIONS = {"leads", "brokers"}
REQUESTS = 200
MONTH = date(2026, 11, 1)


def seed(admin_dsn: str, leads: int, brokers: int) -> list[str]:
    with psycopg.connect(admin_dsn) as conn:
        ids = [r[0] for r in conn.execute(
            "INSERT INTO brokers (name) SELECT 'Broker ' || g FROM generate_series(1, %s) g RETURNING id::text",
            (brokers,))]
        conn.execute(
            """INSERT INTO leads (assigned_broker_id, first_name, property_state, lead_score, campaign_status)
               SELECT (%(ids)s::uuid[])[1 + g %% %(n)s], 'Lead' || g, (ARRAY['CA','TX','NV','FL'])[1 + g %% 4],
                      g %% 100, (ARRAY['new','queued','active','replied'])[1 + g %% 4]::campaign_status
                 FROM generate_series(1, %(leads)s) g""", {"ids": ids, "n": brokers, "leads": leads})
        conn.execute(
            """INSERT INTO billing_events (broker_id, lead_id, event_type, occurred_at)
               SELECT assigned_broker_id, id, 'appointment_set',
                      timestamptz '2026-11-02 10:00-08' + (random() * interval '27 days')
                 FROM leads WHERE random() < 0.2""")
        conn.execute("ANALYZE leads")
        conn.execute("ANALYZE billing_events")
    return ids


def run(leads: int = 200_000, brokers: int = 50) -> dict[str, Any]:
    os.environ.setdefault(JWT_SECRET_ENV, secrets.token_urlsafe(32))
    with fresh_database("equity_bench_portal") as (admin, app):
        broker_ids = seed(admin, leads, brokers)
        postgres = PostgresResource(dsn=app, max_size=4)
        try:
            with running_gateway(GatewaySettings(postgres=postgres)) as url:
                token = issue_token(broker_ids[0])
                session = requests.Session()
                session.headers["Authorization"] = f"Bearer {token}"
                params = [{"state": "CA", "limit": 50, "offset": 50 * (i % 10)} if i % 2 else {"q": "Lead1", "limit": 50}
                          for i in range(REQUESTS)]
                session.get(f"{url}/api/v1/leads", timeout=30).raise_for_status()  # warm-up
                latencies = []
                for p in params:
                    started = time.perf_counter()
                    session.get(f"{url}/api/v1/leads", params=p, timeout=30).raise_for_status()
                    latencies.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            with postgres.connection() as conn:
                built = build_month(conn, MONTH)
            build_s = time.perf_counter() - started
            started = time.perf_counter()
            with postgres.connection() as conn:
                rerun = build_month(conn, MONTH)
            rerun_s = time.perf_counter() - started
        finally:
            postgres.close()
    latencies.sort()
    return {
        "leads": leads, "brokers": brokers, "leads_per_broker": leads // brokers,
        "api_requests": REQUESTS, "api_leads_p50_ms": round(statistics.median(latencies), 1),
        "api_leads_p95_ms": round(latencies[int(0.95 * len(latencies)) - 1], 1),
        "invoice_events": built.events, "invoices_built": built.created, "invoice_build_s": round(build_s, 2),
        "invoice_rerun_unchanged": rerun.unchanged, "invoice_rerun_s": round(rerun_s, 2),
    }
