"""`equity evidence`: consent proof, e-mails and calls in UTC and local time, the gate at each call, suppressions."""

import json
import uuid

import pytest

from equity_assets.cli import main
from equity_assets.voice.evidence import lead_evidence

from .conftest import Lead, add_broker, add_call

GRANTED, REVOKED = "2026-07-01T13:00:00+00:00", "2026-07-01T20:00:00+00:00"


@pytest.fixture
def story(db):
    """Consent, one e-mail, a call in the window, a revocation, then a call at night (as a bug would place it)."""
    broker = add_broker(db)
    lead_id = db.execute(
        """INSERT INTO leads (email, phone, first_name, assigned_broker_id, campaign_status, consent, consented_phone,
                              property_zip, property_state)
           VALUES ('ann@example.com', '+12125550101', 'Ann', %s, 'replied', true, '+12125550101', '10001', 'NY')
           RETURNING id""", (broker,)).fetchone()[0]
    lead = Lead(str(lead_id), broker, "+12125550101")
    token = db.execute("""INSERT INTO consent_tokens (lead_id, nonce_hash, batch_date, issued_at, expires_at, used_at)
                          VALUES (%s, %s, '2026-06-30', '2026-06-30T12:00Z', '2026-07-30T12:00Z', %s) RETURNING id""",
                       (lead.id, "a" * 64, GRANTED)).fetchone()[0]
    granted = db.execute(
        """INSERT INTO lead_consent_audit (lead_id, broker_id, decision, phone_number, disclosure_version, method, ip,
                                           user_agent, token_nonce_hash, created_at)
           VALUES (%s, %s, 'granted', %s, 'pewc-2026-11-v1', 'form', '203.0.113.9', '<script>x</script>', %s, %s)
           RETURNING id""",
        (lead.id, broker, lead.phone, "a" * 64, GRANTED)).fetchone()[0]
    db.execute("""INSERT INTO campaign_sends (batch_date, lead_id, broker_id, campaign_id, consent_token_id, status,
                                              pushed_at)
                  VALUES ('2026-06-30', %s, %s, 'camp-1', %s, 'pushed', '2026-06-30T13:00Z')""", (lead.id, broker, token))
    day_call, _ = add_call(db, lead, attempt=1)
    night_call, _ = add_call(db, lead, attempt=2)
    db.execute("UPDATE calls SET created_at = '2026-07-01T15:00Z' WHERE id = %s", (day_call,))
    db.execute("UPDATE calls SET created_at = '2026-07-02T02:00Z' WHERE id = %s", (night_call,))
    db.execute("""INSERT INTO lead_consent_audit (lead_id, broker_id, decision, reason, phone_number, method, created_at)
                  VALUES (%s, %s, 'revoked', 'said stop on the call', %s, 'call', %s)""",
               (lead.id, broker, lead.phone, REVOKED))
    db.execute("""INSERT INTO suppression_list (channel, value, reason, source, lead_id, created_at)
                  VALUES ('phone', %s, 'revoked on a call', 'revocation', %s, %s),
                         ('phone', '+12125559999', 'someone else', 'internal', NULL, %s)""",
               (lead.phone, lead.id, REVOKED, REVOKED))
    return lead, str(token), granted, day_call, night_call


def test_evidence_holds_consent_sends_calls_with_their_gate_and_suppressions(db, story):
    lead, token, granted, day_call, night_call = story
    with db.transaction():
        evidence = lead_evidence(db, lead.id)
    assert evidence["lead"]["local_zone"] == "America/New_York"
    proof, revocation = evidence["consent"]
    assert (proof["decision"], proof["token_id"], proof["disclosure_version"], proof["ip"], proof["created_at"],
            proof["local_time"]) == ("granted", token, "pewc-2026-11-v1", "203.0.113.9", GRANTED,
                                     "2026-07-01T09:00:00-04:00")
    assert proof["user_agent"] == "<script>x</script>"
    assert (revocation["decision"], revocation["reason"], revocation["method"]) == ("revoked", "said stop on the call",
                                                                                     "call")
    [email] = evidence["emails"]
    assert (email["batch_date"], email["pushed_at"], email["pushed_at_local"]) == (
        "2026-06-30", "2026-06-30T13:00:00+00:00", "2026-06-30T09:00:00-04:00")
    day, night = evidence["calls"]
    assert (day["id"], day["created_at"], day["created_at_local"]) == (day_call, "2026-07-01T15:00:00+00:00",
                                                                       "2026-07-01T11:00:00-04:00")
    assert day["gate"]["allowed"] and day["gate"]["consent_audit_id"] == granted
    assert day["gate"]["window"]["local_times"] == ["2026-07-01T11:00-04:00"]
    assert night["id"] == night_call
    assert night["gate"]["allowed"] is False and night["gate"]["consent_audit_id"] is None
    assert night["gate"]["phone_suppressed"] is True
    assert night["gate"]["window"]["reasons"] == ["outside_window:America/New_York"]
    assert [(s["value"], s["source"]) for s in evidence["suppressions"]] == [(lead.phone, "revocation")]


def test_equity_evidence_prints_json_and_escaped_html(db, story, clean_db, monkeypatch, capsys):
    lead, token, *_ = story
    monkeypatch.setenv("EQUITY_DATABASE_URL", clean_db.app_dsn)
    assert main(["evidence", lead.id]) == 0
    assert json.loads(capsys.readouterr().out)["consent"][0]["token_id"] == token
    assert main(["evidence", lead.id, "--format", "html"]) == 0
    page = capsys.readouterr().out
    assert page.startswith("<!doctype html>") and token in page and "pewc-2026-11-v1" in page
    assert "<script>x</script>" not in page and "&lt;script&gt;x&lt;/script&gt;" in page
    assert main(["evidence", str(uuid.uuid4())]) == 1
    assert "no lead" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["evidence", "not-a-uuid"])
