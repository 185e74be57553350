"""`equity bench webhooks --rate R --seconds S`: Instantly webhook acceptance on loopback.

A gateway process (uvicorn, its own interpreter) on a fresh database receives R distinct
``reply_received`` events per second for S seconds from an open-loop client: request *i* is due
at ``start + i / R`` whether or not earlier answers came back, and its latency is measured from
that due time, so a server that falls behind shows it in the tail instead of hiding it by slowing
the client down. Every answer must be 200 after the event is committed; ``lost`` counts accepted
events missing from ``webhook_events`` afterwards (must be 0).

The rate limit is lifted for the run (one client IP sends everything) but still counted in the
database on every request, as in production. 100 warm-up requests (stored, not timed) open the
gateway's connection pool first. Bounded: at most 2,000 req/s for 60 s, 127.0.0.1 only.
Target: p99 < 50 ms at 500 req/s.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

import psycopg

from .common import fresh_database

OPTIONS = {"rate", "seconds"}
TARGETS = {"rate": 500, "p99_ms": 50.0}
MAX_RATE = 2000
MAX_SECONDS = 60.0
CONNECTIONS = 64
WARM_UP = 100  # requests before the measured run (stored too, not timed)
HOST = "127.0.0.1"
SECRET = "bench-instantly-webhook-secret"

_SERVER = """
import sys
import uvicorn
from equity_assets.db.resources import PostgresResource
from equity_assets.gateway import GatewaySettings, create_app
from equity_assets.gateway.webhooks import WebhookSettings

port, dsn, upload_dir = int(sys.argv[1]), sys.argv[2], sys.argv[3]
settings = GatewaySettings(upload_dir=upload_dir, webhooks=WebhookSettings(rate_limit_per_window=10**9),
                           postgres=PostgresResource(dsn=dsn, min_size=8, max_size=16, application_name="bench_gateway"))
uvicorn.run(create_app(settings), host="127.0.0.1", port=port, log_level="warning", access_log=False)
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _wait_for(port: int, process: subprocess.Popen, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the bench gateway exited during start-up")
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError("the bench gateway did not start")


def _request(port: int, i: int) -> bytes:
    body = json.dumps({"timestamp": "2026-11-24T14:02:00Z", "event_type": "reply_received",
                       "workspace": "bench", "campaign_id": "bench", "campaign_name": "Bench",
                       "lead_email": f"lead{i}@bench.example", "reply_subject": "Re: hello",
                       "reply_text": f"Yes, call me. (message {i})"}).encode()
    head = (f"POST /v1/webhooks/instantly HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Type: application/json\r\n"
            f"X-Equity-Webhook-Secret: {SECRET}\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    return head + body


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, payload: bytes) -> int:
    writer.write(payload)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = next((int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length:")), 0)
    await reader.readexactly(length)
    return status


async def _load(port: int, rate: int, seconds: float) -> tuple[list[float], dict[int, int], float]:
    total = int(rate * seconds)
    payloads = [_request(port, i) for i in range(WARM_UP, WARM_UP + total)]
    pool: asyncio.Queue = asyncio.Queue()
    for _ in range(CONNECTIONS):
        pool.put_nowait(await asyncio.open_connection(HOST, port))
    # Warm up (not measured): the gateway opens its database pool on first use.
    warm = [pool.get_nowait() for _ in range(CONNECTIONS)]
    for i in range(WARM_UP):
        reader, writer = warm[i % CONNECTIONS]
        await _exchange(reader, writer, _request(port, i))
    for connection in warm:
        pool.put_nowait(connection)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.2

    async def one(i: int) -> None:
        due = start + i / rate
        await asyncio.sleep(max(0.0, due - loop.time()))
        reader, writer = await pool.get()
        try:
            status = await _exchange(reader, writer, payloads[i])
        except (OSError, asyncio.IncompleteReadError):
            status = 0
            writer.close()
            reader, writer = await asyncio.open_connection(HOST, port)
        pool.put_nowait((reader, writer))
        latencies.append((loop.time() - due) * 1000)
        statuses[status] = statuses.get(status, 0) + 1

    await asyncio.gather(*(one(i) for i in range(total)))
    elapsed = loop.time() - start
    while not pool.empty():
        _, writer = pool.get_nowait()
        writer.close()
    return latencies, statuses, elapsed


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2) if ordered else 0.0


def run(rate: int = 500, seconds: float = 5.0) -> dict[str, Any]:
    rate, seconds = max(1, min(int(rate), MAX_RATE)), max(1.0, min(float(seconds), MAX_SECONDS))
    port = _free_port()
    with fresh_database("equity_bench_webhooks") as (_, app_dsn), tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "EQUITY_INSTANTLY_WEBHOOK_SECRETS": SECRET}
        server = subprocess.Popen([sys.executable, "-c", _SERVER, str(port), app_dsn, tmp], env=env)
        try:
            _wait_for(port, server)
            latencies, statuses, elapsed = asyncio.run(_load(port, rate, seconds))
        finally:
            server.terminate()
            server.wait(timeout=30)
        with psycopg.connect(app_dsn) as conn:
            conn.execute("SET ROLE service_role")  # the pipeline's role: RLS hides the inbox from others
            stored = conn.execute("SELECT count(*) FROM webhook_events WHERE provider = 'instantly'").fetchone()[0]
    accepted = statuses.get(200, 0)
    p99 = _percentile(latencies, 0.99)
    return {
        "offered_rate": rate,
        "seconds": seconds,
        "requests": len(latencies),
        "accepted": accepted,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "accepted_per_s": round(accepted / elapsed, 1),
        "p50_ms": _percentile(latencies, 0.50),
        "p99_ms": p99,
        "max_ms": round(max(latencies), 2) if latencies else 0.0,
        "stored": stored - WARM_UP,
        "lost": max(0, accepted + WARM_UP - stored),
        "targets": TARGETS,
        "meets_target": rate >= TARGETS["rate"] and p99 < TARGETS["p99_ms"] and accepted == len(latencies)
                        and stored == accepted + WARM_UP,
    }
