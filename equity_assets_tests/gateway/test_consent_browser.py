"""The consent page in real headless Chromium (Debian's, driven by Playwright; no browser download).

The link comes from a real campaign batch pushed to the sandbox's Instantly, exactly as the lead
would receive it. A screenshot of every state lands in the test's tmp dir.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from equity_assets.sandbox import SandboxControl
from equity_assets.security.consent import mint
from equity_assets_tests.campaign.helpers import add_broker, add_leads, definitions, instantly, refresh, run_campaign

CONSENT_SECRET = "browser-consent-secret-0123456789"


@pytest.fixture
def page(browser, tmp_path):
    context = browser.new_context(viewport={"width": 390, "height": 844}, user_agent="EquityBrowserTest/1.0")
    yield context.new_page()
    context.close()


@pytest.fixture(autouse=True)
def consent_env(monkeypatch):
    monkeypatch.setenv("EQUITY_CONSENT_SECRET", CONSENT_SECRET)


@pytest.fixture
def campaign_link(gateway, gateway_db, postgres, sandbox_url) -> tuple[object, str]:
    """(lead id, consent URL) as mailed by the day's batch through the sandbox's Instantly."""
    with psycopg.connect(gateway_db.admin_dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE contactable_leads, contactable_recheck_emails")
        conn.execute("UPDATE contactable_refresh_state SET watermark = NULL, size = 0, refreshed_at = NULL")
        broker = add_broker(conn, campaign="browser-campaign")
        conn.execute("UPDATE brokers SET name = 'Acme Home Loans' WHERE id = %s", (broker,))
        [lead] = add_leads(conn, broker, [90.0])
        conn.execute("UPDATE leads SET phone = '+15125550101' WHERE id = %s", (lead,))
    defs = definitions(postgres, instantly(sandbox_url))
    refresh(defs)
    day = "2026-11-24"
    result = run_campaign(defs, partition=day, run_config={
        "ops": {"campaign_day": {"config": {"consent_base_url": gateway.url}}}})
    assert result.success
    [mailed] = SandboxControl(sandbox_url).campaign_leads("browser-campaign")
    url = mailed["custom_variables"]["consent_url"]
    assert url.startswith(f"{gateway.url}/consent/")
    return lead, url


def shot(page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / "screenshots" / f"{name}.png"
    path.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 5_000
    return path


def test_lead_gives_consent_from_the_mailed_link_then_sees_it_used(page, gateway, campaign_link, tmp_path):
    lead, url = campaign_link
    response = page.goto(url)
    assert response.status == 200
    assert "Acme Home Loans" in page.inner_text("main")
    assert page.get_by_label("Phone number we may call").input_value() == "(512) 555-0101"
    shot(page, tmp_path, "1-form")
    page.get_by_label("Phone number we may call").fill("512-555-0142")
    page.get_by_label("I have read and agree to the statement below.").check()
    page.get_by_role("button", name="I agree").click()
    assert "your permission is recorded" in page.inner_text("h1").lower()
    shot(page, tmp_path, "2-confirmed")
    row = gateway.query("SELECT consent, consent_method, consented_phone FROM leads WHERE id = %s", (lead,))
    assert row == [(True, "form", "+15125550142")]
    audit = gateway.query("SELECT decision, phone_number, disclosure_version, user_agent FROM lead_consent_audit "
                          "WHERE lead_id = %s", (lead,))
    assert audit == [("granted", "+15125550142", "pewc-2026-11-v1", "EquityBrowserTest/1.0")]

    again = page.goto(url)
    assert again.status == 409 and "already been used" in page.inner_text("h1")
    shot(page, tmp_path, "3-already-used")


def test_one_click_revocation_from_the_confirmation_page(page, gateway, campaign_link, tmp_path):
    lead, url = campaign_link
    page.goto(url)
    page.get_by_label("I have read and agree to the statement below.").check()
    page.get_by_role("button", name="I agree").click()
    page.get_by_role("button", name="Withdraw my permission").click()
    assert "withdrawn" in page.inner_text("h1")
    shot(page, tmp_path, "4-revoked")
    assert gateway.query("SELECT consent FROM leads WHERE id = %s", (lead,)) == [(False,)]
    assert gateway.query("SELECT decision FROM lead_consent_audit WHERE lead_id = %s ORDER BY id", (lead,)) == \
        [("granted",), ("revoked",)]


def test_keyboard_only_submission(page, gateway, campaign_link, tmp_path):
    lead, url = campaign_link
    page.goto(url)
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "phone"
    page.keyboard.press("Control+A")
    page.keyboard.type("(512) 555-0199")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "agree"
    page.keyboard.press("Space")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.tagName") == "BUTTON"
    shot(page, tmp_path, "5-keyboard-focus")
    page.keyboard.press("Enter")
    page.wait_for_selector("text=permission is recorded")
    assert gateway.query("SELECT consented_phone FROM leads WHERE id = %s", (lead,)) == [("+15125550199",)]


def test_invalid_phone_is_explained_next_to_the_field(page, campaign_link, tmp_path):
    _, url = campaign_link
    page.goto(url)
    page.get_by_label("Phone number we may call").fill("12")
    page.get_by_label("I have read and agree to the statement below.").check()
    page.get_by_role("button", name="I agree").click()
    field = page.get_by_label("Phone number we may call")
    assert field.get_attribute("aria-invalid") == "true"
    assert "not" in page.locator("#phone-error").inner_text()
    shot(page, tmp_path, "6-invalid-phone")


def test_expired_and_damaged_links(page, gateway, campaign_link, tmp_path):
    lead, url = campaign_link
    with gateway.postgres.connection() as conn:
        expired = mint(conn, lead, now=datetime.now(UTC) - timedelta(days=7, seconds=5)).token
    response = page.goto(f"{gateway.url}/consent/{expired}")
    assert response.status == 410 and "expired" in page.inner_text("h1")
    shot(page, tmp_path, "7-expired")
    response = page.goto(url[:-3] + "xyz")
    assert response.status == 400 and "does not work" in page.inner_text("h1")
    shot(page, tmp_path, "8-damaged")

