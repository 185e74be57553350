"""The consent page over real HTTP: states, CSRF, validation, atomic consumption, revocation."""

from __future__ import annotations

import re
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
import requests

from equity_assets.security.consent import build_token, consent_url, mint

CONSENT_SECRET = "gateway-consent-secret-0123456789"


@pytest.fixture(autouse=True)
def consent_env(monkeypatch):
    monkeypatch.setenv("EQUITY_CONSENT_SECRET", CONSENT_SECRET)


@pytest.fixture
def lead(gateway_db):
    """A lead of broker 'Acme Home Loans' with phone +15125550101 and a fresh consent link."""
    with psycopg.connect(gateway_db.admin_dsn, autocommit=True) as conn:
        broker = conn.execute("INSERT INTO brokers (name) VALUES ('Acme Home Loans') RETURNING id").fetchone()[0]
        lead_id = conn.execute(
            "INSERT INTO leads (email, phone, first_name, assigned_broker_id) VALUES "
            "('ann@example.com', '+15125550101', 'Ann', %s) RETURNING id", (broker,)).fetchone()[0]
        token = mint(conn, lead_id, now=datetime.now(UTC)).token
    return lead_id, token


def form_fields(html: str) -> dict[str, str]:
    return dict(re.findall(r'name="([a-z_]+)" value="([^"]*)"', html))


def open_form(gateway, token: str) -> tuple[requests.Session, dict[str, str]]:
    session = requests.Session()
    page = session.get(f"{gateway.url}/consent/{token}", timeout=10)
    assert page.status_code == 200
    return session, form_fields(page.text)


def submit(session, gateway, token, fields, **changes) -> requests.Response:
    data = {"phone": "(512) 555-0101", "agree": "yes", **fields, **changes}
    return session.post(f"{gateway.url}/consent/{token}", data=data, timeout=10)


def test_form_shows_broker_phone_and_disclosure_without_external_assets(gateway, lead):
    _, token = lead
    page = requests.get(consent_url(gateway.url, token), timeout=10)
    assert page.status_code == 200
    assert "Acme Home Loans" in page.text and "(512) 555-0101" in page.text
    assert "not a condition of purchasing" in page.text and "pewc-2026-11-v1" in page.text
    assert not re.search(r'(src|href)="(https?:)?//', page.text)  # nothing loaded from elsewhere
    assert '<label for="phone">' in page.text and '<html lang="en">' in page.text
    assert page.headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert "consent_csrf" in page.headers["set-cookie"] and "SameSite=strict" in page.headers["set-cookie"]


def test_submission_records_consent_and_audit_then_the_link_is_used(gateway, lead):
    lead_id, token = lead
    session, fields = open_form(gateway, token)
    done = submit(session, gateway, token, fields, phone="512.555.0177")
    assert done.status_code == 200 and "permission is recorded" in done.text
    consent, method, phone, at = gateway.query(
        "SELECT consent, consent_method, consented_phone, consented_at FROM leads WHERE id = %s", (lead_id,))[0]
    assert (consent, method, phone) == (True, "form", "+15125550177") and at is not None
    audit = gateway.query("SELECT decision, phone_number, disclosure_version, method, ip::text, user_agent "
                          "FROM lead_consent_audit WHERE lead_id = %s", (lead_id,))
    assert audit == [("granted", "+15125550177", "pewc-2026-11-v1", "form", "127.0.0.1/32",
                      session.headers["User-Agent"])]
    again = requests.get(f"{gateway.url}/consent/{token}", timeout=10)
    assert again.status_code == 409 and "already been used" in again.text
    resubmit = submit(session, gateway, token, fields)
    assert resubmit.status_code == 409


def test_revocation_link_on_the_confirmation_page(gateway, lead):
    lead_id, token = lead
    session, fields = open_form(gateway, token)
    done = submit(session, gateway, token, fields)
    revoke_fields = form_fields(done.text)
    revoked = session.post(f"{gateway.url}/consent/{token}/revoke", data=revoke_fields, timeout=10)
    assert revoked.status_code == 200 and "withdrawn" in revoked.text
    assert gateway.query("SELECT consent FROM leads WHERE id = %s", (lead_id,)) == [(False,)]
    assert gateway.query("SELECT decision, method FROM lead_consent_audit WHERE lead_id = %s ORDER BY id",
                         (lead_id,)) == [("granted", "form"), ("revoked", "form_revocation_link")]
    assert gateway.query("SELECT value FROM suppression_list WHERE channel = 'phone'") == [("+15125550101",)]


def test_csrf_is_required(gateway, lead):
    lead_id, token = lead
    session, fields = open_form(gateway, token)
    # No cookie (another site's form): refused.
    forged = requests.post(f"{gateway.url}/consent/{token}", data={**fields, "phone": "5125550101", "agree": "yes"},
                           timeout=10)
    assert forged.status_code == 403
    # Cookie but a made-up form value: refused.
    assert submit(session, gateway, token, fields, csrf_token="0" * 64).status_code == 403
    # A form value minted for another link does not carry over.
    other = build_token(uuid.uuid4(), lead_id, datetime.now(UTC) + timedelta(days=1), secret=CONSENT_SECRET).token
    assert session.post(f"{gateway.url}/consent/{other}", data=fields, timeout=10).status_code == 403
    assert gateway.query("SELECT consent FROM leads WHERE id = %s", (lead_id,)) == [(False,)]


def test_invalid_phone_and_missing_agreement_re_render_the_form(gateway, lead):
    lead_id, token = lead
    session, fields = open_form(gateway, token)
    bad_phone = submit(session, gateway, token, fields, phone="555-12")
    assert bad_phone.status_code == 400 and 'aria-invalid="true"' in bad_phone.text
    no_box = submit(session, gateway, token, fields, agree="")
    assert no_box.status_code == 400 and "tick the box" in no_box.text
    assert gateway.query("SELECT used_at FROM consent_tokens") == [(None,)]  # still usable
    assert submit(session, gateway, token, fields).status_code == 200


def test_expired_and_tampered_links_get_their_pages(gateway, lead):
    lead_id, _ = lead
    past = datetime.now(UTC) - timedelta(days=8)
    with gateway.postgres.connection() as conn:
        expired = mint(conn, lead_id, now=past).token
    page = requests.get(f"{gateway.url}/consent/{expired}", timeout=10)
    assert page.status_code == 410 and "expired" in page.text
    _, token = lead
    tampered = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
    assert requests.get(f"{gateway.url}/consent/{tampered}", timeout=10).status_code == 400
    assert requests.get(f"{gateway.url}/consent/not-a-token", timeout=10).status_code == 400


def test_fifty_concurrent_submissions_of_one_link_record_one_consent(start_gateway, lead):
    gateway = start_gateway(rate_limit_per_window=1000)
    lead_id, token = lead
    session, fields = open_form(gateway, token)
    cookies = session.cookies.get_dict()

    def one(_: int) -> int:
        return requests.post(f"{gateway.url}/consent/{token}", cookies=cookies, timeout=30,
                             data={**fields, "phone": "5125550101", "agree": "yes"}).status_code

    with ThreadPoolExecutor(max_workers=50) as pool:
        statuses = list(pool.map(one, range(50)))
    assert statuses.count(200) == 1, statuses
    assert set(statuses) <= {200, 409}
    assert gateway.query("SELECT count(*) FROM lead_consent_audit WHERE decision = 'granted'") == [(1,)]
    assert gateway.query("SELECT count(*) FROM pipeline_events WHERE event_type = 'consent_granted'") == [(1,)]
