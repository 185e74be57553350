"""`equity bench voice`: the compliance gate's throughput and the candidate pre-filter's latency.

A fresh database gets ``leads`` leads, one in ten of them consenting callers with a grant in
``lead_consent_audit`` and a past call or two; the figures are the time of one
``voice_call_candidates(now, 2000)`` (what a `voice_calls` tick reads) and the gate's decisions per
second over those candidates (zones, state rules and every other reason, as the asset runs it),
after the one-time load of the ZIP index (reported on its own).
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

import psycopg

from ..voice import zones
from ..voice.calls import load_candidates
from ..voice.planner import plan_calls
from .common import fresh_database

OPTIONS = {"leads"}
ZIPS = ("10001", "32501", "79901", "85004", "97914", "58601", "46320", "33130", "94103", "60601")
AREA = ("212", "850", "915", "602", "541", "701", "219", "305", "415", "312")

_FILL_SQL = """
WITH b AS (INSERT INTO brokers (name) VALUES ('bench') RETURNING id),
l AS (
    INSERT INTO leads (assigned_broker_id, phone, consented_phone, consent, phone_verified, last_reply_intent,
                       campaign_status, property_zip, property_state, call_attempt_count)
    SELECT b.id, p, CASE WHEN i %% 10 = 0 THEN p END, i %% 10 = 0, true,
           CASE WHEN i %% 10 = 0 THEN 'interested' END, 'replied', z, NULL, (i / 10) %% 3
    FROM b, generate_series(1, %(n)s) i,
         LATERAL (SELECT '+1' || (%(area)s::text[])[1 + i %% 10] || '2' || lpad((i %% 1000000)::text, 6, '0') AS p,
                         (%(zips)s::text[])[1 + i %% 10] AS z) x
    RETURNING id, assigned_broker_id, consented_phone)
INSERT INTO lead_consent_audit (lead_id, broker_id, decision, phone_number, disclosure_version, method)
SELECT id, assigned_broker_id, 'granted', consented_phone, 'pewc-2026-11-v1', 'form' FROM l WHERE consented_phone IS NOT NULL
"""


def run(leads: int = 100_000) -> dict[str, Any]:
    with fresh_database("equity_bench_voice") as (admin, _):
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(_FILL_SQL, {"n": leads, "area": list(AREA), "zips": list(ZIPS)})
            conn.execute("ANALYZE")
            now = datetime(2026, 7, 1, 18, 0, tzinfo=timezone.utc)
            started = time.perf_counter()
            candidates = load_candidates(conn, now, 2000)
            prefilter_s = time.perf_counter() - started
        started = time.perf_counter()
        zones.zip_zones("10001")  # the ZIP index is built once per process
        index_s = time.perf_counter() - started
        started = time.perf_counter()
        plan = plan_calls(candidates, now, open_by_broker={}, open_total=0)
        gate_s = time.perf_counter() - started
    return {
        "leads": leads,
        "candidates": len(candidates),
        "prefilter_ms": round(prefilter_s * 1000, 1),
        "zone_index_load_s": round(index_s, 2),
        "gate_decisions_per_s": round(len(candidates) / gate_s) if gate_s else None,
        "allowed": len(plan.chosen) + sum(plan.deferred.values()),
        "refusals_by_reason": dict(plan.refusals),
    }
