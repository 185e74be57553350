"""GET /healthz: 200 with a reachable database, 503 without one."""

from __future__ import annotations

import socket
import time

import requests

from equity_assets.db.resources import PostgresResource


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_healthz_reports_the_database(gateway):
    response = requests.get(f"{gateway.url}/healthz", timeout=5)
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


def test_healthz_is_503_quickly_when_the_database_is_unreachable(start_gateway):
    dead = PostgresResource(dsn=f"postgresql://nobody@127.0.0.1:{closed_port()}/equity")
    gw = start_gateway(postgres=dead)
    started = time.monotonic()
    response = requests.get(f"{gw.url}/healthz", timeout=10)
    assert response.status_code == 503
    assert response.json()["database"] == "unreachable"
    assert time.monotonic() - started < 5
