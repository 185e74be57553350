"""The broker portal in real headless Chromium (Debian's, via Playwright): A sees exactly A's leads,
reports an application, cannot open B's lead, a form without its CSRF token is refused, logout ends
the session. A screenshot of every page lands in the test's tmp dir."""

from __future__ import annotations

from pathlib import Path

import pytest

from .portal_fixtures import portal_env, two_brokers  # noqa: F401 (fixtures)
from .test_consent_browser import shot


@pytest.fixture
def phone(browser):
    context = browser.new_context(viewport={"width": 390, "height": 844}, user_agent="EquityPortalTest/1.0")
    yield context.new_page()
    context.close()


def sign_in(page, gateway, broker) -> None:
    page.goto(f"{gateway.url}/portal/login")
    page.get_by_label("E-mail").fill(broker.email)
    page.get_by_label("Password").fill(broker.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_selector("h1:text('Dashboard')")


def test_broker_a_works_in_the_portal_and_sees_only_their_leads(phone, gateway, two_brokers, tmp_path: Path):
    a, b = two_brokers
    page = phone
    page.goto(f"{gateway.url}/portal/")
    assert page.url.endswith("/portal/login")  # no session: sent to sign in
    shot(page, tmp_path, "01-login")
    sign_in(page, gateway, a)
    assert "Acme Home Loans" in page.inner_text("header")
    shot(page, tmp_path, "02-dashboard")

    page.get_by_role("link", name="Leads").click()
    names = page.locator("tbody a").all_inner_texts()
    assert sorted(names) == ["Aaron Ames", "Alice Anders", "Ava Arden"]
    assert "Bob" not in page.inner_text("main")
    # Fits a phone: nothing wider than the 390 px viewport.
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    shot(page, tmp_path, "03-leads")
    page.get_by_label("State").fill("CA")
    page.get_by_role("button", name="Filter").click()
    assert sorted(page.locator("tbody a").all_inner_texts()) == ["Alice Anders", "Ava Arden"]

    page.get_by_role("link", name="Alice Anders").click()
    assert page.inner_text("h1") == "Alice Anders"
    page.get_by_role("button", name="Report application submitted").click()
    assert "Recorded: application submitted." in page.inner_text("[role=status]")
    shot(page, tmp_path, "04-lead-reported")
    assert gateway.query("SELECT broker_id, event_type, source FROM billing_events WHERE lead_id = %s", (a.leads[0],)) \
        == [(a.id, "application_submitted", "portal")]

    response = page.goto(f"{gateway.url}/portal/leads/{b.leads[0]}")
    assert response.status == 404 and "Bob" not in page.content()
    shot(page, tmp_path, "05-other-brokers-lead-404")

    for name, title in (("analytics", "Analytics"), ("billing", "Billing"), ("consent", "Consent"),
                        ("settings", "Settings")):
        response = page.goto(f"{gateway.url}/portal/{name}")
        assert response.status == 200 and page.inner_text("h1") == title
        shot(page, tmp_path, f"06-{name}")
    assert page.locator("svg[role=img]").count() == 0  # settings page has none; analytics checked below
    page.goto(f"{gateway.url}/portal/analytics")
    assert page.locator("svg[role=img]").count() == 2
    funnel = page.locator("svg >> nth=0").text_content()
    assert "Leads3 (100.0%)" in funnel and "Applications1 (33.3%)" in funnel  # A's numbers only

    page.goto(f"{gateway.url}/portal/settings")
    page.get_by_role("button", name="Create secret").click()
    assert page.inner_text("#new-secret").startswith("whsec_")
    shot(page, tmp_path, "07-settings-secret")

    # A form stripped of its CSRF token is refused, and nothing is written.
    page.goto(f"{gateway.url}/portal/leads/{a.leads[1]}")
    page.evaluate("document.querySelectorAll('input[name=csrf_token]').forEach(e => e.remove())")
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.get_by_role("button", name="Report loan funded").click()
    assert posted.value.status == 403
    shot(page, tmp_path, "08-csrf-refused")
    assert gateway.query("SELECT count(*) FROM billing_events WHERE lead_id = %s", (a.leads[1],)) == [(0,)]

    page.goto(f"{gateway.url}/portal/")
    page.get_by_role("button", name="Sign out").click()
    assert page.url.endswith("/portal/login")
    page.goto(f"{gateway.url}/portal/leads")
    assert page.url.endswith("/portal/login")  # the session is over
    shot(page, tmp_path, "09-logged-out")
    shots = sorted(p.name for p in (tmp_path / "screenshots").iterdir())
    assert len(shots) == 12


def test_sign_in_and_navigate_by_keyboard_only(phone, gateway, two_brokers, tmp_path: Path):
    a, _ = two_brokers
    page = phone
    page.goto(f"{gateway.url}/portal/login")
    page.keyboard.press("Tab")  # the skip link comes first
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "email"
    page.keyboard.type(a.email)
    page.keyboard.press("Tab")
    page.keyboard.type(a.password)
    page.keyboard.press("Enter")
    page.wait_for_selector("h1:text('Dashboard')")
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")  # skip link, then the first navigation link
    assert page.evaluate("document.activeElement.getAttribute('aria-current')") == "page"
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    page.wait_for_selector("h1:text('Leads')")
    shot(page, tmp_path, "keyboard-leads")
