"""The CPU accounting of `equity bench ingest`: PostgreSQL's share is read from /proc, and a
backend that has exited must still count (its time moves to the postmaster's reaped children)."""

from __future__ import annotations

import time

import psycopg

from equity_assets.bench.common import CpuSampler, cluster_cpu_seconds, data_directory


def test_a_backends_cpu_counts_while_it_runs_and_after_it_exits(test_db) -> None:
    data_dir = data_directory(test_db.admin_dsn)
    before = cluster_cpu_seconds(data_dir)
    with psycopg.connect(test_db.admin_dsn) as conn:
        started = time.perf_counter()
        conn.execute("SELECT sum(i) FROM generate_series(1, 15000000) i").fetchone()
        busy = time.perf_counter() - started
        during = cluster_cpu_seconds(data_dir)
    time.sleep(0.5)  # the backend exits and is reaped
    after = cluster_cpu_seconds(data_dir)
    # the query is CPU-bound in one backend: nearly all its wall time is that backend's CPU
    assert during - before >= 0.6 * busy, (before, during, busy)
    assert after >= during - 0.02, (during, after)


def test_the_sampler_splits_cpu_between_moments(test_db) -> None:
    with CpuSampler(data_directory(test_db.admin_dsn), interval=0.05) as cpu:
        with psycopg.connect(test_db.admin_dsn) as conn:
            conn.execute("SELECT sum(i) FROM generate_series(1, 8000000) i").fetchone()
        middle = cpu.sample()
        sum(i * i for i in range(3_000_000))  # this process's share
    first, last = cpu.samples[0], cpu.samples[-1]
    database, python = cpu.between(first, middle), cpu.between(middle, last)
    assert database["postgres"] > python["postgres"] and python["python"] > database["python"], (database, python)
