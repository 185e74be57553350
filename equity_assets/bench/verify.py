"""Benchmark of `verified_leads`: N synthetic leads verified end to end against the sandbox.

A fresh database on the embedded cluster (dropped afterwards), N leads inserted set-based,
`brokers` brokers covering most states, the sandbox in its own process with 50 ms added latency
per request (so it does not share the Python interpreter with the pipeline), then one Dagster
`materialize()` of `verified_leads` with its asset checks. No ANALYZE after the seed: the
planner sees what it sees right after a bulk import. Prints one JSON object::

    equity bench verify --leads 100000 --json
    python -m equity_assets.bench.verify --leads 100000 [--concurrency 8] [--chunk-size 1000] [--error-rate 0.02]

Target: >= 2,000 leads/s at N = 100,000.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dagster as dg
import psycopg
import requests

from equity_assets.bench.common import fresh_database
from equity_assets.campaign.assets import scored_leads
from equity_assets.campaign.checks import queued_leads_are_assigned_and_contactable
from equity_assets.db.resources import PostgresResource
from equity_assets.sandbox import SandboxConfig, SandboxControl
from equity_assets.vendors.batchdata import BatchDataResource
from equity_assets.vendors.melissa import MelissaResource
from equity_assets.verify.assets import verified_leads
from equity_assets.verify.checks import suppressed_channels_are_not_usable

# (city, state, zip, county); the last two states get no broker, to exercise "unassigned".
_PLACES = (
    ("Tampa", "FL", "33602", "Hillsborough"), ("Orlando", "FL", "32801", "Orange"),
    ("Houston", "TX", "77002", "Harris"), ("San Antonio", "TX", "78201", "Bexar"),
    ("Phoenix", "AZ", "85003", "Maricopa"), ("Sacramento", "CA", "95811", "Sacramento"),
    ("Fresno", "CA", "93701", "Fresno"), ("Akron", "OH", "44301", "Summit"),
    ("Macon", "GA", "31201", "Bibb"), ("Greensboro", "NC", "27401", "Guilford"),
    ("Knoxville", "TN", "37902", "Knox"), ("Peoria", "IL", "61602", "Peoria"),
    ("Spokane", "WA", "99201", "Spokane"), ("Henderson", "NV", "89002", "Clark"),
    ("Pueblo", "CO", "81001", "Pueblo"), ("Allentown", "PA", "18101", "Lehigh"),
    ("Buffalo", "NY", "14201", "Erie"), ("Flint", "MI", "48502", "Genesee"),
    ("Newark", "NJ", "07102", "Essex"), ("Portland", "ME", "04101", "Cumberland"),
)
_COVERED_STATES = sorted({p[1] for p in _PLACES} - {"NJ", "ME"})

_INSERT_LEADS = """
INSERT INTO leads (property_address, property_city, property_state, property_zip, county,
                   first_name, last_name, email, phone, owner_occupied, property_type,
                   estimated_value, loan_balance, equity, ltv, source)
SELECT (g + 100)::text || ' ' || (%(streets)s::text[])[1 + g %% 12] || ' '
           || (ARRAY['St', 'Ave', 'Rd', 'Ln', 'Dr'])[1 + (g / 12) %% 5],
       p.city, p.state, p.zip, p.county,
       (ARRAY['Mary', 'James', 'Linda', 'Robert', 'Patricia', 'John', 'Barbara', 'William'])[1 + g %% 8],
       'Owner' || g,
       'owner' || g || '@' || (ARRAY['gmail.com', 'yahoo.com', 'aol.com', 'comcast.net', 'vtext.com',
                                     'outlook.com', 'mailinator.com', 'att.net'])[1 + (g / 7) %% 8],
       '+1' || (200 + g %% 700)::text || (200 + (g / 700) %% 700)::text || lpad((g %% 10000)::text, 4, '0'),
       g %% 5 <> 0,
       (ARRAY['Single Family Residential', 'Condominium', 'Townhouse', 'Duplex (2 units, any combination)',
              'Mobile/Manufactured Home', 'Residential-Vacant Land'])[1 + (g / 3) %% 6],
       v.value, v.value * ((g / 11) %% 90) / 100, v.value * (100 - (g / 11) %% 90) / 100,
       (g / 11) %% 90, 'bench'
FROM generate_series(1, %(n)s) AS g
CROSS JOIN LATERAL (SELECT 150000 + (g * 7919) %% 600000 AS value) v
JOIN (SELECT row_number() OVER () - 1 AS k, * FROM unnest(%(cities)s::text[], %(states)s::text[],
                                                          %(zips)s::text[], %(counties)s::text[])
                                                   AS t(city, state, zip, county)) p
  ON p.k = g %% %(places)s
"""
#: Options `equity bench verify` passes through (see cli.cmd_bench).
OPTIONS = {"leads", "brokers"}
TARGETS = {"leads_per_s": 2000.0}  # a floor, at N = 100,000

_STREETS = ["Maple", "Cedar", "Birch", "Willow", "Aspen", "Juniper", "Magnolia", "Sycamore", "Hawthorn",
            "Chestnut", "Laurel", "Cypress"]


def run(
    leads: int = 100_000,
    brokers: int = 50,
    latency_ms: int = 50,
    *,
    chunk_size: int = 1000,
    concurrency: int = 8,
    error_rate: float = 0.0,
) -> dict[str, Any]:
    """Verify ``leads`` synthetic leads end to end; returns the figures (see module docstring).

    ``concurrency`` is each provider resource's ``max_concurrency`` (requests in flight);
    ``error_rate`` makes that share of sandbox requests answer 5xx, so ``retries`` means something.
    """
    with fresh_database("equity_bench_verify") as (_, dsn), sandbox_process(latency_ms, error_rate) as sandbox_url:
        setup_started = time.perf_counter()
        seed_data(dsn, leads, brokers)
        setup_s = time.perf_counter() - setup_started
        postgres = PostgresResource(dsn=dsn, application_name="equity_bench")
        keys = SandboxConfig()
        started = time.perf_counter()
        result = dg.materialize(
            [verified_leads, scored_leads, queued_leads_are_assigned_and_contactable, suppressed_channels_are_not_usable],
            resources={
                "postgres": postgres,
                "melissa": MelissaResource(license_key=keys.melissa_license_key, base_url=sandbox_url,
                                           max_concurrency=concurrency),
                "batchdata": BatchDataResource(api_token=keys.batchdata_api_token, base_url=sandbox_url,
                                               max_concurrency=concurrency),
            },
            run_config={"ops": {"verified_leads": {"config": {"chunk_size": chunk_size, "max_leads_per_run": leads}}}},
            instance=dg.DagsterInstance.ephemeral(),
        )
        seconds = time.perf_counter() - started
        postgres.close()
        (materialization,) = result.asset_materializations_for_node("verified_leads")
        meta = {k: v.value for k, v in materialization.metadata.items()}
        (scored,) = result.asset_materializations_for_node("scored_leads")
        assignment = {k: v.value for k, v in scored.metadata.items()}
        stats = SandboxControl(sandbox_url).stats()
    leads_per_s = round(meta["leads_verified"] / seconds, 1)
    return {
        "leads": leads,
        "seconds": round(seconds, 2),
        "leads_per_s": leads_per_s,
        "asset_seconds": meta["duration_s"],
        "requests": sum(stats["requests"].values()),
        "requests_by_path": stats["requests"],
        "retries": meta["retries"],
        "verified": meta["leads_verified"],
        "verified_by_melissa": meta["verified_by_melissa"],
        "verified_by_batchdata": meta["verified_by_batchdata"],
        "no_match": meta["no_match"],
        "usable_email": meta["usable_email"],
        "usable_phone": meta["usable_phone"],
        "suppressed": meta["suppressed"],
        "dlq": meta["dlq"],
        "merged_by_mak": meta["merged_by_mak"],
        "assigned": assignment["assigned"],
        "unassigned_no_broker": assignment["unassigned_no_broker"],
        "checks_passed": all(e.passed for e in result.get_asset_check_evaluations()),
        "brokers": brokers,
        "latency_ms": latency_ms,
        "error_rate": error_rate,
        "chunk_size": chunk_size,
        "concurrency": concurrency,
        "setup_seconds": round(setup_s, 2),
        "targets": TARGETS,
        "meets_targets": {"leads_per_s": leads_per_s >= TARGETS["leads_per_s"]},
    }


def seed_data(dsn: str, leads: int, brokers: int) -> None:
    """N leads and the brokers, set-based."""
    cities, states, zips, counties = (list(column) for column in zip(*_PLACES, strict=True))
    with psycopg.connect(dsn) as conn:
        conn.execute("SET ROLE service_role")
        conn.execute(
            _INSERT_LEADS,
            {"n": leads, "streets": _STREETS, "cities": cities, "states": states, "zips": zips,
             "counties": counties, "places": len(_PLACES)},
        )
        conn.execute(
            """INSERT INTO brokers (name, territory_states)
               SELECT 'Broker ' || b, ARRAY[(%(states)s::text[])[1 + b %% %(n)s],
                                            (%(states)s::text[])[1 + (b * 7) %% %(n)s]]
               FROM generate_series(0, %(brokers)s - 1) AS b""",
            {"states": _COVERED_STATES, "n": len(_COVERED_STATES), "brokers": brokers},
        )


@contextmanager
def sandbox_process(latency_ms: int, error_rate: float = 0.0) -> Iterator[str]:
    """`python -m equity_assets.sandbox` on a free port with these fault knobs; yields its URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "EQUITY_SANDBOX_LATENCY_MS": str(latency_ms), "EQUITY_SANDBOX_ERROR_RATE": str(error_rate)}
    process = subprocess.Popen(
        [sys.executable, "-m", "equity_assets.sandbox", "--host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for(url, process)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_for(url: str, process: subprocess.Popen[bytes], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"sandbox exited during start-up (code {process.returncode})")
        try:
            requests.get(url + "/_sandbox/stats", timeout=1).raise_for_status()
            return
        except requests.RequestException:
            time.sleep(0.1)
    raise TimeoutError(f"sandbox at {url} did not answer within {timeout_s} s")


def main(argv: list[str] | None = None) -> None:
    """`python -m equity_assets.bench.verify --leads N [--brokers B] [--latency-ms L]`: print JSON."""
    parser = argparse.ArgumentParser(prog="python -m equity_assets.bench.verify", description=__doc__)
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument("--brokers", type=int, default=50)
    parser.add_argument("--latency-ms", type=int, default=50)
    parser.add_argument("--chunk-size", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--error-rate", type=float, default=0.0)
    args = parser.parse_args(argv)
    figures = run(
        args.leads, args.brokers, args.latency_ms,
        chunk_size=args.chunk_size, concurrency=args.concurrency, error_rate=args.error_rate,
    )
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
