"""`equity bench webhooks --rate R --seconds S [--workers W]`: the gateway under provider traffic.

A gateway (``equity gateway``'s ``serve``: W uvicorn worker processes with uvloop and httptools) on
a fresh database receives R requests per second for S seconds from an open-loop client on
loopback: signed Instantly webhooks, VAPI server messages (status updates and end-of-call
reports, bearer-authenticated) and, one request in ``UPLOAD_EVERY``, a signed CSV upload. Request
*i* is due at ``start + i / R`` whether or not earlier answers came back, and its latency is
measured from that due time, so a server that falls behind shows it in the tail (coordinated
omission would hide it). The client is one asyncio loop (uvloop) with ``CONNECTIONS`` keep-alive
connections; a request whose due time comes while every connection is busy waits, and that wait
counts.

Every webhook answer must be 200 after the event is committed, every upload 202 after its row is;
afterwards every accepted webhook's inbox id must be in ``webhook_events`` exactly once (by id and
by event key) and every accepted upload in ``uploads``. The webhook rate limit is lifted for the
run (one client address sends everything) but still counted, as in production; 200 warm-up
requests (stored, not timed) open the workers' connection pools first. CPU seconds of the client,
the gateway's processes and the database's processes are read from ``/proc`` so the figures say
where the two cores went. Bounded: at most 2,000 req/s for 60 s, 127.0.0.1 only.
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
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import psycopg

from ..security.signing import sign_request
from .common import fresh_database, process_children

OPTIONS = {"rate", "seconds", "workers"}
TARGETS = {"rate": 1000, "p99_ms": 50.0}
MAX_RATE = 2000
MAX_SECONDS = 60.0
CONNECTIONS = 96
WARM_UP = 200  # requests before the measured run (stored too, not timed)
UPLOAD_EVERY = 100  # one request in a hundred is a signed upload
VAPI_EVERY = 3  # one in three of the rest is a VAPI message
HOST = "127.0.0.1"
INSTANTLY_SECRET = "bench-instantly-webhook-secret"
VAPI_SECRET = "bench-vapi-webhook-secret"
UPLOAD_SECRET = "bench-upload-secret-0123456789abcdef"
_ENV = {"EQUITY_INSTANTLY_WEBHOOK_SECRETS": INSTANTLY_SECRET, "EQUITY_VAPI_WEBHOOK_SECRETS": VAPI_SECRET,
        "EQUITY_VAPI_WEBHOOK_AUTH": "bearer", "EQUITY_UPLOAD_SECRETS": UPLOAD_SECRET}

_SERVER = """
import sys
from equity_assets.gateway.server import serve
serve(port=int(sys.argv[1]), workers=int(sys.argv[2]), app_factory="equity_assets.bench.webhooks:bench_app",
      log_level="warning", keep_alive_s=120)
"""


def bench_app():
    """The gateway as ``equity gateway`` builds it, on the bench's database, with the limits lifted."""
    from ..db.resources import PostgresResource
    from ..gateway import GatewaySettings, create_app
    from ..gateway.webhooks import WebhookSettings

    settings = GatewaySettings(
        upload_dir=os.environ["EQUITY_BENCH_UPLOAD_DIR"], rate_limit_per_window=10**9,
        webhooks=WebhookSettings(rate_limit_per_window=10**9),
        postgres=PostgresResource(dsn=os.environ["EQUITY_BENCH_DSN"], min_size=4, max_size=8,
                                  application_name="bench_gateway"))
    return create_app(settings)


# --------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class Planned:
    kind: str  # instantly | vapi | upload
    wire: bytes


def _http(port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return (f"POST {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\n{head}Content-Length: {len(body)}\r\n\r\n"
            ).encode() + body


def plan_request(port: int, i: int, now: int) -> Planned:
    """Request number ``i``: an upload, a VAPI message or an Instantly event, each distinct."""
    if i % UPLOAD_EVERY == UPLOAD_EVERY - 1:
        body = f"address,city,state,zip\r\n{i} Bench St,Derby,CT,06418\r\n".encode()
        headers = {"Content-Type": "text/csv", **sign_request(body, UPLOAD_SECRET, now)}
        return Planned("upload", _http(port, "/v1/uploads?source=csv", body, headers))
    if i % VAPI_EVERY == 0:
        kind = "end-of-call-report" if i % 2 else "status-update"
        body = json.dumps({"message": {"type": kind, "status": "ended", "endedReason": "customer-ended-call",
                                       "call": {"id": f"bench-call-{i}"}, "timestamp": 1764424920000 + i}}).encode()
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {VAPI_SECRET}"}
        return Planned("vapi", _http(port, "/v1/webhooks/vapi", body, headers))
    body = json.dumps({"timestamp": "2026-11-24T14:02:00Z", "event_type": "reply_received",
                       "workspace": "bench", "campaign_id": "bench", "campaign_name": "Bench",
                       "lead_email": f"lead{i}@bench.example", "reply_subject": "Re: hello",
                       "reply_text": f"Yes, call me. (message {i})"}).encode()
    headers = {"Content-Type": "application/json", "X-Equity-Webhook-Secret": INSTANTLY_SECRET}
    return Planned("instantly", _http(port, "/v1/webhooks/instantly", body, headers))


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, payload: bytes) -> tuple[int, bytes]:
    writer.write(payload)
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = next((int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length:")), 0)
    return status, await reader.readexactly(length)


@dataclass
class Outcome:
    latencies: list[float] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    by_kind: Counter = field(default_factory=Counter)
    errors: list[dict[str, Any]] = field(default_factory=list)  # the first few, with the request number
    webhook_ids: list[int] = field(default_factory=list)
    upload_ids: list[str] = field(default_factory=list)
    warm_up_accepted: int = 0
    elapsed: float = 0.0

    @property
    def accepted(self) -> int:
        return len(self.webhook_ids) + len(self.upload_ids)


def _record(outcome: Outcome, i: int, planned: Planned, status: int, body: bytes) -> None:
    outcome.statuses[status] += 1
    ok = status == (202 if planned.kind == "upload" else 200)
    outcome.by_kind[f"{planned.kind}:{'ok' if ok else status}"] += 1
    if not ok:
        if len(outcome.errors) < 10:
            outcome.errors.append({"request": i, "kind": planned.kind, "status": status,
                                   "body": body[:200].decode(errors="replace")})
        return
    answer = json.loads(body)
    if planned.kind == "upload":
        outcome.upload_ids.append(answer["upload_id"])
    else:
        outcome.webhook_ids.append(answer["event_id"])


async def _load(port: int, rate: int, seconds: float) -> Outcome:
    total = int(rate * seconds)
    now = int(time.time())
    warm = [plan_request(port, i, now) for i in range(WARM_UP)]
    planned = [plan_request(port, i, now) for i in range(WARM_UP, WARM_UP + total)]
    outcome = Outcome()
    # Warm-up (not timed, but checked like the rest): the workers open their pools on first use.
    # Connections idle longer than the server's keep-alive (2 minutes here) would be closed.
    connections = []
    for n, request in enumerate(warm):
        if n < CONNECTIONS:
            connections.append(await asyncio.open_connection(HOST, port))
        status, body = await _exchange(*connections[n % len(connections)], request.wire)
        _record(outcome, n - WARM_UP, request, status, body)
    while len(connections) < CONNECTIONS:
        connections.append(await asyncio.open_connection(HOST, port))
    outcome.warm_up_accepted = outcome.accepted
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.2
    next_index = 0

    async def sender(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal next_index
        while next_index < total:
            i, next_index = next_index, next_index + 1
            due = start + i / rate
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                status, body = await _exchange(reader, writer, planned[i].wire)
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                status, body = 0, type(exc).__name__.encode()
                writer.close()
                reader, writer = await asyncio.open_connection(HOST, port)
            outcome.latencies.append((loop.time() - due) * 1000)
            _record(outcome, WARM_UP + i, planned[i], status, body)
        writer.close()

    await asyncio.gather(*(sender(r, w) for r, w in connections))
    outcome.elapsed = loop.time() - start
    return outcome


# --------------------------------------------------------------------------- CPU accounting

_TICK = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICK  # utime + stime
    except (FileNotFoundError, ProcessLookupError):
        return 0.0


def _machine_busy_seconds() -> float:
    with open("/proc/stat") as f:
        user, nice, system, idle, iowait, irq, softirq, steal = map(int, f.readline().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / _TICK


def _database_pids(dsn: str) -> list[int]:
    """Backends of the bench's database and the server's own writers (WAL, checkpoints)."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                            "OR backend_type IN ('walwriter', 'checkpointer', 'background writer')").fetchall()
    return [r[0] for r in rows]


class CpuMeter:
    """CPU seconds used by the client, the gateway's process tree and the database, over a run."""

    def __init__(self, gateway_pid: int, dsn: str) -> None:
        self.gateway_pid, self.dsn = gateway_pid, dsn

    def _sample(self) -> dict[str, float]:
        gateway = [self.gateway_pid, *process_children(self.gateway_pid)]
        return {"client": time.process_time(), "gateway": sum(map(_cpu_seconds, gateway)),
                "postgres": sum(map(_cpu_seconds, _database_pids(self.dsn))), "machine": _machine_busy_seconds()}

    def __enter__(self) -> CpuMeter:
        self.before, self.started = self._sample(), time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        after, wall = self._sample(), time.monotonic() - self.started
        self.cores = {k: round((after[k] - self.before[k]) / wall, 2) for k in after}
        self.cores["others_on_the_machine"] = round(
            self.cores["machine"] - self.cores["client"] - self.cores["gateway"] - self.cores["postgres"], 2)


# --------------------------------------------------------------------------- the run


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _wait_for(port: int, process: subprocess.Popen, timeout_s: float = 300.0) -> None:
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


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2) if ordered else 0.0


def _inbox_check(dsn: str, outcome: Outcome) -> dict[str, Any]:
    """Every accepted webhook's inbox row exactly once; every accepted upload's row."""
    with psycopg.connect(dsn) as conn:
        conn.execute("SET ROLE service_role")  # the pipeline's role: RLS hides the inbox from others
        rows = conn.execute("SELECT id, provider, event_key FROM webhook_events").fetchall()
        uploads = {r[0] for r in conn.execute("SELECT id::text FROM uploads")}
    ids = Counter(outcome.webhook_ids)
    stored = {row[0] for row in rows}
    keys = Counter((provider, key) for _, provider, key in rows)
    missing = sorted(set(ids) - stored)
    answered_twice = sorted(i for i, n in ids.items() if n > 1)
    return {
        "webhooks_accepted": len(outcome.webhook_ids),
        "webhooks_in_inbox": sum(1 for i in ids if i in stored),
        "inbox_rows": len(rows),
        "missing_from_inbox": missing[:10],
        "same_id_answered_twice": answered_twice[:10],
        "event_keys_stored_twice": sum(1 for n in keys.values() if n > 1),
        "uploads_accepted": len(outcome.upload_ids),
        "uploads_missing": sorted(set(outcome.upload_ids) - uploads)[:10],
        "lost": len(missing) + len(set(outcome.upload_ids) - uploads),
    }


def run(rate: int = 1000, seconds: float = 10.0, workers: int = 2) -> dict[str, Any]:
    rate, seconds = max(1, min(int(rate), MAX_RATE)), max(1.0, min(float(seconds), MAX_SECONDS))
    workers = max(1, min(int(workers), 8))
    port = _free_port()
    with fresh_database("equity_bench_webhooks") as (admin_dsn, app_dsn), tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, **_ENV, "EQUITY_BENCH_DSN": app_dsn, "EQUITY_BENCH_UPLOAD_DIR": tmp}
        server = subprocess.Popen([sys.executable, "-c", _SERVER, str(port), str(workers)], env=env)
        try:
            _wait_for(port, server)
            with CpuMeter(server.pid, admin_dsn) as cpu:
                outcome = _runner(_load(port, rate, seconds))
        finally:
            server.terminate()
            try:
                server.wait(timeout=60)
            except subprocess.TimeoutExpired:  # a worker stuck on a loaded box must not hang the run
                server.kill()
                server.wait()
        inbox = _inbox_check(app_dsn, outcome)
    measured = len(outcome.latencies)
    errors = sum(n for status, n in outcome.statuses.items() if status not in (200, 202))
    p99 = _percentile(outcome.latencies, 0.99)
    return {
        "offered_rate": rate, "seconds": seconds, "workers": workers, "connections": CONNECTIONS,
        "requests": measured, "warm_up_requests": WARM_UP, "by_kind": dict(sorted(outcome.by_kind.items())),
        "statuses": {str(k): v for k, v in sorted(outcome.statuses.items())},
        "errors": errors, "first_errors": outcome.errors,
        "accepted_per_s": round((outcome.accepted - outcome.warm_up_accepted) / outcome.elapsed, 1),
        "p50_ms": _percentile(outcome.latencies, 0.50), "p99_ms": p99,
        "max_ms": round(max(outcome.latencies), 2) if outcome.latencies else 0.0,
        **inbox,
        "cpu_cores_used": cpu.cores,
        "targets": TARGETS,
        "meets_target": rate >= TARGETS["rate"] and p99 < TARGETS["p99_ms"] and errors == 0 and inbox["lost"] == 0,
    }


def _runner(coroutine):
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)
