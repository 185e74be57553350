"""Portal sign-in over HTTP: cookies, CSRF on every form, lockout with backoff, logout, settings."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
import requests

from equity_assets.gateway.portal.identity import FREE_FAILURES, check_login, lock_for
from equity_assets.security.notify import broker_signing_secrets, notification_headers
from equity_assets.security.signing import verify_standard_webhook

from .portal_fixtures import portal_env, two_brokers  # noqa: F401 (fixtures)

CSRF = re.compile(r'name="csrf_token" value="([0-9a-f]{64})"')


def login_session(gateway, email: str, password: str) -> tuple[requests.Session, requests.Response]:
    s = requests.Session()
    form = s.get(f"{gateway.url}/portal/login", timeout=10)
    token = CSRF.search(form.text).group(1)
    answer = s.post(f"{gateway.url}/portal/login", data={"email": email, "password": password, "csrf_token": token},
                    allow_redirects=False, timeout=10)
    return s, answer


def csrf_of(s: requests.Session, url: str) -> str:
    return CSRF.search(s.get(url, timeout=10).text).group(1)


def test_login_sets_a_hardened_session_cookie(gateway, two_brokers):
    a, _ = two_brokers
    s, answer = login_session(gateway, a.email.upper(), a.password)  # e-mail is case-insensitive
    assert answer.status_code == 303 and answer.headers["location"] == "/portal/"
    cookie = answer.headers["set-cookie"]
    assert "ec_session=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert "Secure" not in cookie  # plain http on loopback in a local environment
    assert s.get(f"{gateway.url}/portal/", timeout=10).status_code == 200
    # The database keeps a hash of the token, never the cookie value.
    [(stored,)] = gateway.query("SELECT token_sha256 FROM broker_sessions")
    assert stored not in cookie


def test_cookie_is_secure_outside_local(gateway, two_brokers, monkeypatch):
    monkeypatch.setenv("EQUITY_ENV", "production")
    answer = requests.get(f"{gateway.url}/portal/login", timeout=10)
    assert "Secure" in answer.headers["set-cookie"]
    # Over plain http the client then keeps the cookie to itself, so the form cannot be posted.
    a, _ = two_brokers
    assert login_session(gateway, a.email, a.password)[1].status_code == 403


def test_a_forged_or_tampered_cookie_is_no_session(gateway, two_brokers):
    a, _ = two_brokers
    s, _ = login_session(gateway, a.email, a.password)
    value = s.cookies["ec_session"]
    token, signature = value.rsplit(".", 1)
    # the token's first character changed (to one it is not: the token is random)
    retyped = ("y" if value[0] == "x" else "x") + value[1:]
    for forged in (token + ".00", retyped, "anything"):
        answer = requests.get(f"{gateway.url}/portal/", cookies={"ec_session": forged}, allow_redirects=False, timeout=10)
        assert answer.status_code == 303 and answer.headers["location"] == "/portal/login"


def test_login_form_without_csrf_is_refused(gateway, two_brokers):
    a, _ = two_brokers
    answer = requests.post(f"{gateway.url}/portal/login", data={"email": a.email, "password": a.password},
                           allow_redirects=False, timeout=10)
    assert answer.status_code == 403
    assert gateway.query("SELECT count(*) FROM broker_sessions") == [(0,)]


@pytest.mark.parametrize("path,data", [("/portal/settings", {"notify_url": "https://evil.example/hook"}),
                                       ("/portal/settings/secret", {}), ("/portal/settings/cap", {"requested_cap": "9"}),
                                       ("/portal/logout", {})])
def test_every_form_requires_its_csrf_token(gateway, two_brokers, path, data):
    a, _ = two_brokers
    s, _ = login_session(gateway, a.email, a.password)
    for bad in ({}, {"csrf_token": "0" * 64}):
        assert s.post(f"{gateway.url}{path}", data={**data, **bad}, allow_redirects=False, timeout=10).status_code == 403
    assert gateway.query("SELECT notify_url FROM brokers WHERE id = %s", (a.id,)) == [(None,)]
    assert gateway.query("SELECT count(*) FROM broker_notify_secrets") == [(0,)]
    assert gateway.query("SELECT count(*) FROM broker_sessions WHERE revoked_at IS NOT NULL") == [(0,)]


def test_another_sessions_csrf_token_does_not_work(gateway, two_brokers):
    a, b = two_brokers
    sa, _ = login_session(gateway, a.email, a.password)
    sb, _ = login_session(gateway, b.email, b.password)
    b_token = csrf_of(sb, f"{gateway.url}/portal/settings")
    answer = sa.post(f"{gateway.url}/portal/settings/cap", data={"requested_cap": "10", "csrf_token": b_token}, timeout=10)
    assert answer.status_code == 403


def test_wrong_password_locks_the_account_with_backoff(gateway, two_brokers):
    a, _ = two_brokers
    for _ in range(FREE_FAILURES):
        assert login_session(gateway, a.email, "wrong password!!")[1].status_code == 401
    [(failures, locked_until)] = gateway.query("SELECT failed_attempts, locked_until FROM broker_credentials "
                                               "WHERE broker_id = %s", (a.id,))
    assert failures == FREE_FAILURES and locked_until is not None
    # Locked: even the right password is refused, and the failure count does not move.
    _, answer = login_session(gateway, a.email, a.password)
    assert answer.status_code == 401 and "paused" in answer.text
    assert gateway.query("SELECT failed_attempts FROM broker_credentials WHERE broker_id = %s", (a.id,)) == [(failures,)]
    assert lock_for(FREE_FAILURES - 1) is None
    assert lock_for(FREE_FAILURES) < lock_for(FREE_FAILURES + 1) < lock_for(FREE_FAILURES + 2)
    assert lock_for(100) == timedelta(hours=1)
    assert gateway.query("SELECT count(*) FROM pipeline_events WHERE event_type = 'broker_login_failed'") == [(6,)]


def test_after_the_lock_expires_the_right_password_works(gateway, two_brokers):
    a, _ = two_brokers
    with gateway.postgres.connection() as conn:
        now = datetime.now(UTC)
        for _ in range(FREE_FAILURES):
            assert not check_login(conn, a.email, "nope nope nope", now).ok
        assert not check_login(conn, a.email, a.password, now + timedelta(seconds=29)).ok
        assert check_login(conn, a.email, a.password, now + timedelta(seconds=31)).ok
        assert conn.execute("SELECT failed_attempts FROM broker_credentials WHERE broker_id = %s", (a.id,)).fetchone() == (0,)


def test_unknown_email_and_inactive_broker_cannot_log_in(gateway, two_brokers):
    a, _ = two_brokers
    assert login_session(gateway, "nobody@example.com", a.password)[1].status_code == 401
    gateway.query("UPDATE brokers SET active = false WHERE id = %s RETURNING id", (a.id,))
    assert login_session(gateway, a.email, a.password)[1].status_code == 401


def test_logout_revokes_the_session_server_side(gateway, two_brokers):
    a, _ = two_brokers
    s, _ = login_session(gateway, a.email, a.password)
    stolen = s.cookies["ec_session"]
    token = csrf_of(s, f"{gateway.url}/portal/")
    assert s.post(f"{gateway.url}/portal/logout", data={"csrf_token": token}, allow_redirects=False,
                  timeout=10).status_code == 303
    # A copy of the cookie taken before logout is worthless after it.
    answer = requests.get(f"{gateway.url}/portal/", cookies={"ec_session": stolen}, allow_redirects=False, timeout=10)
    assert answer.status_code == 303


def test_settings_rotation_and_notification_signatures(gateway, two_brokers):
    a, b = two_brokers
    s, _ = login_session(gateway, a.email, a.password)
    url = f"{gateway.url}/portal/settings"
    page = s.post(url, data={"notify_url": "https://crm.acme.example/hook", "daily_summary": "on",
                             "csrf_token": csrf_of(s, url)}, timeout=10)
    assert page.status_code == 200 and "Settings saved" in page.text
    assert gateway.query("SELECT notify_url, email_preferences FROM brokers WHERE id = %s", (a.id,)) == [
        ("https://crm.acme.example/hook", {"daily_summary": True, "appointment_alerts": False})]
    bad = s.post(url, data={"notify_url": "javascript:alert(1)", "csrf_token": csrf_of(s, url)}, timeout=10)
    assert bad.status_code == 400
    first = re.search(r'id="new-secret">(whsec_[^<]+)<', s.post(f"{url}/secret", data={"csrf_token": csrf_of(s, url)},
                                                                timeout=10).text).group(1)
    second = re.search(r'id="new-secret">(whsec_[^<]+)<', s.post(f"{url}/secret", data={"csrf_token": csrf_of(s, url)},
                                                                 timeout=10).text).group(1)
    assert first != second and first not in s.get(url, timeout=10).text  # shown once only
    with gateway.postgres.connection() as conn:
        active = broker_signing_secrets(conn, a.id)
        assert active == [second, first]  # the previous one still signs during the rotation window
        assert broker_signing_secrets(conn, b.id) == []
    body = json.dumps({"type": "appointment.booked"}).encode()
    headers = notification_headers(body, active, msg_id="msg_1", timestamp=1_700_000_000)
    # A receiver that knows only the old or only the new secret accepts the message.
    assert verify_standard_webhook(body, headers, [first], now=1_700_000_000) == 0
    assert verify_standard_webhook(body, headers, [second], now=1_700_000_000) == 0
    gateway.query("UPDATE broker_notify_secrets SET retires_at = now() - interval '1 second' "
                  "WHERE secret = %s RETURNING id", (first,))
    with gateway.postgres.connection() as conn:
        assert broker_signing_secrets(conn, a.id) == [second]


def test_a_broker_cannot_rotate_without_an_identity(gateway_db):
    with psycopg.connect(gateway_db.app_dsn) as conn:
        conn.execute("SELECT set_config('role', 'authenticated', true)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT rotate_notify_secret('whsec_AAAA')")


def test_billing_csv_holds_the_brokers_invoice_lines(gateway, two_brokers):
    from datetime import date

    from equity_assets.billing.invoices import build_month

    a, b = two_brokers
    gateway.query("INSERT INTO billing_events (broker_id, lead_id, event_type, occurred_at) VALUES "
                  "(%s, %s, 'appointment_set', '2026-11-05 10:00-08'), (%s, %s, 'appointment_set', '2026-11-05 10:00-08') "
                  "RETURNING id", (a.id, a.leads[0], b.id, b.leads[0]))
    with gateway.postgres.connection() as conn:
        build_month(conn, date(2026, 11, 1))
    s, _ = login_session(gateway, a.email, a.password)
    answer = s.get(f"{gateway.url}/portal/billing.csv", timeout=10)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    assert answer.text.splitlines() == [
        "month,revision,status,event_type,tier,quantity,unit_price,amount,invoice_total",
        "2026-11,1,draft,appointment_set,1-25,1,150.00,150.00,150.00"]  # B's invoice is not in it
    page = s.get(f"{gateway.url}/portal/billing", timeout=10).text
    assert "$150.00" in page and "Bob" not in page


def test_csv_cells_cannot_be_formulas():
    from equity_assets.gateway.portal.pages import inert

    assert [inert(v) for v in ("=cmd|' /C calc'!A0", "@SUM(1)", "+1", "-1", "\tx", "plain", None)] == [
        "'=cmd|' /C calc'!A0", "'@SUM(1)", "'+1", "'-1", "'\tx", "plain", ""]
