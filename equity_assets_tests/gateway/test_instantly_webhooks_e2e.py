"""End to end over loopback: a campaign push → the sandbox's Instantly webhooks → the gateway inbox →
`email_replies`, with nothing lost and nothing twice."""

from __future__ import annotations

import dagster as dg
import psycopg
import pytest
import requests

from equity_assets.engage.assets import email_replies
from equity_assets.engage.checks import engage_checks
from equity_assets.sandbox import SandboxConfig, SandboxControl
from equity_assets.sandbox.instantly_webhooks import lead_events
from equity_assets_tests.campaign.helpers import add_broker, add_leads, definitions, instantly, refresh, run_campaign

SECRET = "e2e-instantly-secret"


@pytest.fixture(autouse=True)
def secrets_env(monkeypatch):
    monkeypatch.setenv("EQUITY_INSTANTLY_WEBHOOK_SECRETS", SECRET)
    monkeypatch.setenv("EQUITY_CONSENT_SECRET", "e2e-consent-secret-0123456789")


def register(sandbox_url: str, target: str, secret: str = SECRET) -> requests.Response:
    return requests.post(f"{sandbox_url}/api/v2/webhooks", timeout=10,
                         headers={"Authorization": f"Bearer {SandboxConfig().instantly_api_key}"},
                         json={"target_hook_url": target, "event_type": "all_events",
                               "headers": {"X-Equity-Webhook-Secret": secret}})


def test_registration_needs_the_api_key_and_a_url(sandbox_url):
    assert requests.post(f"{sandbox_url}/api/v2/webhooks", json={"target_hook_url": "http://x"},
                         timeout=10).status_code == 401
    assert register(sandbox_url, "not a url").status_code == 400


def test_the_reply_mix_is_seeded_and_contains_revocations():
    emails = [f"lead{i}@example.com" for i in range(400)]
    runs = [[lead_events(7, "c", e) for e in emails] for _ in range(2)]
    strip = [[[{k: v for k, v in ev.items() if k not in ("timestamp", "email_id")} for ev in evs] for evs in run]
             for run in runs]
    assert strip[0] == strip[1]  # the same lead always behaves the same
    kinds = [ev["event_type"] for evs in runs[0] for ev in evs]
    assert kinds.count("email_sent") == 400
    assert {"reply_received", "email_bounced", "lead_unsubscribed"} <= set(kinds)
    texts = [ev["reply_text"] for evs in runs[0] for ev in evs if ev["event_type"] == "reply_received"]
    assert any(t.strip() == "STOP" for t in texts) and any("out of the office" in t for t in texts)


def test_push_to_inbox_to_email_replies(gateway, gateway_db, postgres, sandbox_url):
    with psycopg.connect(gateway_db.admin_dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE contactable_leads, contactable_recheck_emails")
        conn.execute("UPDATE contactable_refresh_state SET watermark = NULL, size = 0, refreshed_at = NULL")
        broker = add_broker(conn, campaign="e2e-campaign")
        add_leads(conn, broker, [50.0 + i % 40 for i in range(120)])
    assert register(sandbox_url, f"{gateway.url}/v1/webhooks/instantly").status_code == 200
    defs = definitions(postgres, instantly(sandbox_url))
    refresh(defs)
    assert run_campaign(defs, partition="2026-11-24").success
    deliveries = SandboxControl(sandbox_url).wait_for_webhooks(timeout_s=60)
    assert deliveries["failed"] == 0 and deliveries["pending"] == 0
    stored = dict(gateway.query("SELECT event_type, count(*) FROM webhook_events GROUP BY 1"))
    assert stored == deliveries["by_type"]  # every delivered event is in the inbox, once
    assert stored["email_sent"] == 120

    result = dg.materialize([email_replies, *engage_checks], resources={"postgres": postgres})
    assert result.success
    pending = gateway.query("SELECT count(*) FROM webhook_events WHERE status = 'pending'")[0][0]
    assert pending == 0
    actionable = sum(n for kind, n in stored.items() if kind != "email_sent")
    assert gateway.query("SELECT count(*) FROM email_replies")[0][0] == actionable
    revoked = gateway.query("SELECT count(*) FROM email_replies WHERE revocation")[0][0]
    dnc = gateway.query("SELECT count(*) FROM leads WHERE campaign_status = 'do_not_contact'")[0][0]
    assert revoked > 0 and dnc == revoked
