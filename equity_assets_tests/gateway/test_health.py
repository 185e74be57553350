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


def test_the_webhook_pool_is_open_before_the_first_request(start_gateway):
    """A pool that grew under the first burst made its first requests wait on new connections."""
    gw = start_gateway(pool_size=3)
    open_connections = gw.query(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = %s",
        (f"{gw.postgres.application_name}_async",))[0][0]
    assert open_connections == 3


def test_the_gateway_binds_loopback_with_proxy_headers_off_by_default(monkeypatch):
    import inspect

    from equity_assets.cli import build_parser
    from equity_assets.gateway import server
    from equity_assets.gateway.settings import GatewaySettings

    monkeypatch.delenv("EQUITY_GATEWAY_TRUSTED_PROXIES", raising=False)
    assert build_parser().parse_args(["gateway"]).host == "127.0.0.1"
    assert inspect.signature(server.serve).parameters["host"].default == "127.0.0.1"
    assert GatewaySettings().trusted_proxies == ()
    captured = {}
    monkeypatch.setattr(server.uvicorn, "run", lambda app, **kwargs: captured.update(kwargs))
    server.serve(settings=GatewaySettings(postgres=None))
    assert captured["host"] == "127.0.0.1" and captured["proxy_headers"] is False


def test_trusted_proxies_come_from_the_environment_and_typos_are_refused(monkeypatch):
    import pytest

    from equity_assets.gateway.settings import GatewaySettings

    monkeypatch.setenv("EQUITY_GATEWAY_TRUSTED_PROXIES", "10.0.0.5, 192.168.0.0/24")
    assert GatewaySettings().trusted_proxies == ("10.0.0.5", "192.168.0.0/24")
    monkeypatch.setenv("EQUITY_GATEWAY_TRUSTED_PROXIES", "10.0.0.300")
    with pytest.raises(ValueError):
        GatewaySettings()
