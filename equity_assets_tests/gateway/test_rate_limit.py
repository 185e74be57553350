"""Per-IP rate limiting, counted in PostgreSQL so it holds across gateway processes."""

from __future__ import annotations

import time
from datetime import timedelta

import psycopg
import pytest
import requests

from equity_assets.db.resources import PostgresResource
from equity_assets.gateway.ratelimit import count_request, prune_rate_limit_windows
from equity_assets.security.signing import sign_request

from .conftest import SECRET, T0, unique_csv


def rate_limited_events(gw) -> list[dict]:
    return [p for _, p, _ in gw.events("upload_rejected") if p["reason"] == "rate_limited"]


def test_requests_over_the_limit_get_429_with_retry_after_and_one_event(start_gateway):
    gw = start_gateway(rate_limit_per_window=3)
    allowed = [gw.upload(unique_csv()).status_code for _ in range(3)]
    refused = [gw.upload(unique_csv()) for _ in range(2)]

    assert allowed == [202, 202, 202]
    assert [r.status_code for r in refused] == [429, 429]
    assert refused[0].json()["error"] == "rate_limited"
    assert 1 <= int(refused[0].headers["Retry-After"]) <= 60
    # Only the first refusal of a window is recorded, so a flood cannot become a flood of writes.
    [event] = rate_limited_events(gw)
    assert event["client_ip"] == "127.0.0.1" and event["hits"] == 4
    assert gw.query("SELECT count(*) FROM uploads")[0][0] == 3


def test_refused_requests_count_too(start_gateway):
    gw = start_gateway(rate_limit_per_window=2)
    assert gw.post(b"unsigned", {}).status_code == 401
    assert gw.post(b"unsigned", {}).status_code == 401
    assert gw.upload(unique_csv()).status_code == 429


def signed_with_forwarded_for(forwarded_for: str) -> tuple[bytes, dict[str, str]]:
    body = unique_csv()
    return body, {**sign_request(body, SECRET, T0), "X-Forwarded-For": forwarded_for}


def test_a_direct_client_cannot_escape_the_limit_with_x_forwarded_for(start_gateway, monkeypatch):
    monkeypatch.delenv("EQUITY_GATEWAY_TRUSTED_PROXIES", raising=False)
    gw = start_gateway(rate_limit_per_window=1)
    assert gw.settings.trusted_proxies == ()
    assert gw.upload(unique_csv()).status_code == 202
    for forged in ("203.0.113.7", "198.51.100.1, 203.0.113.8"):
        response = gw.post(*signed_with_forwarded_for(forged))
        assert response.status_code == 429, response.text
    assert gw.query("SELECT host(client_ip) FROM uploads") == [("127.0.0.1",)]


def test_limit_is_per_client_ip_behind_a_configured_proxy(start_gateway):
    gw = start_gateway(rate_limit_per_window=1, trusted_proxies=("127.0.0.0/8",))
    assert gw.upload(unique_csv()).status_code == 202  # the proxy's own request: its address
    first = gw.post(*signed_with_forwarded_for("203.0.113.7"))
    assert first.status_code == 202, first.text
    # the client forged a left-most hop; the proxy appended the address it really saw
    forged = gw.post(*signed_with_forwarded_for("203.0.113.99, 203.0.113.7"))
    assert forged.status_code == 429
    # a chain of trusted proxies: their own hops are skipped
    chained = gw.post(*signed_with_forwarded_for("198.51.100.4, 127.0.0.2"))
    assert chained.status_code == 202, chained.text
    assert sorted(gw.query("SELECT host(client_ip) FROM uploads")) \
        == [("127.0.0.1",), ("198.51.100.4",), ("203.0.113.7",)]


def test_limit_is_shared_by_gateway_processes(start_gateway, test_db):
    # Two servers with separate connection pools: only the database can connect their counts.
    first = start_gateway(rate_limit_per_window=3)
    second_pool = PostgresResource(dsn=test_db.app_dsn)
    try:
        second = start_gateway(rate_limit_per_window=3, postgres=second_pool)
        assert [first.upload(unique_csv()).status_code for _ in range(2)] == [202, 202]
        assert second.upload(unique_csv()).status_code == 202
        assert second.upload(unique_csv()).status_code == 429
        assert first.upload(unique_csv()).status_code == 429
    finally:
        second_pool.close()


def test_window_resets_after_it_ends(start_gateway):
    gw = start_gateway(rate_limit_per_window=1, rate_limit_window=timedelta(seconds=1))
    assert gw.upload(unique_csv()).status_code == 202
    refused = gw.upload(unique_csv())
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "1"
    time.sleep(1.1)
    assert gw.upload(unique_csv()).status_code == 202


def test_health_check_is_not_rate_limited(start_gateway):
    gw = start_gateway(rate_limit_per_window=1)
    gw.upload(unique_csv())
    assert gw.upload(unique_csv()).status_code == 429
    assert requests.get(f"{gw.url}/healthz", timeout=5).status_code == 200


def test_count_request_counts_atomically_and_prune_forgets_old_clients(gateway_db, postgres):
    with postgres.connection() as conn:
        decisions = [count_request(conn, "198.51.100.1", limit=2, window=timedelta(minutes=1)) for _ in range(3)]
        conn.execute("INSERT INTO gateway_rate_limits (client_key, window_start, hits) "
                     "VALUES ('198.51.100.2', now() - interval '2 days', 5)")
        removed = prune_rate_limit_windows(conn, timedelta(days=1))
        left = [r[0] for r in conn.execute("SELECT client_key FROM gateway_rate_limits")]
    assert [(d.allowed, d.hits, d.first_rejection) for d in decisions] == [(True, 1, False), (True, 2, False),
                                                                          (False, 3, True)]
    assert removed == 1 and left == ["198.51.100.1"]


@pytest.mark.parametrize("role", ["anon", "authenticated"])
def test_rate_limit_table_is_closed_to_brokers_and_anon(admin_conn, role):
    admin_conn.execute("SELECT set_config('role', %s, true)", (role,))
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        admin_conn.execute("SELECT count(*) FROM gateway_rate_limits")


def test_rate_limit_table_has_forced_row_level_security(admin_conn):
    assert admin_conn.execute("SELECT relrowsecurity, relforcerowsecurity FROM pg_class "
                              "WHERE oid = 'gateway_rate_limits'::regclass").fetchone() == (True, True)
