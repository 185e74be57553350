"""Consent tokens, tested like Django's password-reset tokens (reference/security.md), on PostgreSQL."""

from __future__ import annotations

import base64
import threading
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from equity_assets.security.consent import (
    ConsentConfigError,
    build_token,
    consent_url,
    decode_token,
    mint,
    mint_many,
    verify_and_consume,
)

SECRET = "consent-secret-for-tests-0123456789"
# Minted mid-second on purpose: the 7-day edge must hold for any minting instant.
MINTED = datetime(2026, 11, 16, 14, 0, 0, 250_000, tzinfo=UTC)
SEVEN_DAYS = MINTED + timedelta(days=7)


@pytest.fixture(autouse=True)
def consent_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EQUITY_CONSENT_SECRET", SECRET)


@pytest.fixture
def conn(clean_db):
    """The pipeline's role (service_role), autocommit: each call is its own transaction."""
    with psycopg.connect(clean_db.app_dsn, autocommit=True) as c:
        c.execute("SET ROLE service_role")
        yield c


@pytest.fixture
def leads(conn) -> list[uuid.UUID]:
    broker = conn.execute("INSERT INTO brokers (name) VALUES ('B') RETURNING id").fetchone()[0]
    rows = conn.execute(
        "INSERT INTO leads (email, assigned_broker_id) SELECT 'l' || n || '@example.com', %s "
        "FROM generate_series(1, 3) n RETURNING id", (broker,)).fetchall()
    return [r[0] for r in rows]


def audit(conn) -> list[tuple]:
    return conn.execute("SELECT lead_id, decision, reason FROM lead_consent_audit ORDER BY id").fetchall()


def test_valid_at_exactly_seven_days(conn, leads):
    token = mint(conn, leads[0], now=MINTED).token
    decision = verify_and_consume(conn, token, now=SEVEN_DAYS, phone_number="+15125550100",
                                  disclosure_version="v1", method="web_form", ip="203.0.113.9", user_agent="UA")
    assert decision.accepted and decision.reason == "token_accepted" and decision.lead_id == leads[0]
    row = conn.execute("SELECT lead_id, decision, reason, phone_number, disclosure_version, host(ip), "
                       "token_nonce_hash FROM lead_consent_audit").fetchone()
    assert row[:6] == (leads[0], "granted", "token_accepted", "+15125550100", "v1", "203.0.113.9")
    assert conn.execute("SELECT used_at FROM consent_tokens").fetchone()[0] == SEVEN_DAYS


def test_invalid_one_second_after_seven_days_and_not_spent(conn, leads):
    token = mint(conn, leads[0], now=MINTED).token
    late = verify_and_consume(conn, token, now=SEVEN_DAYS + timedelta(seconds=1))
    assert (late.accepted, late.reason) == (False, "expired")
    assert conn.execute("SELECT used_at FROM consent_tokens").fetchone()[0] is None
    assert audit(conn) == [(leads[0], "rejected", "expired")]


def test_second_use_is_rejected(conn, leads):
    token = mint(conn, leads[0], now=MINTED).token
    assert verify_and_consume(conn, token, now=MINTED + timedelta(hours=1)).accepted
    again = verify_and_consume(conn, token, now=MINTED + timedelta(hours=2))
    assert (again.accepted, again.reason) == (False, "already_used")
    assert [r[1:] for r in audit(conn)] == [("granted", "token_accepted"), ("rejected", "already_used")]


def test_racing_consumers_on_separate_connections_exactly_one_wins(clean_db, conn, leads):
    tokens = [mint(conn, leads[0], now=MINTED).token for _ in range(5)]
    for token in tokens:
        barrier = threading.Barrier(3)
        outcomes: list[str] = []

        def consume(token: str = token, barrier: threading.Barrier = barrier) -> None:
            with psycopg.connect(clean_db.app_dsn) as own:
                own.execute("SET ROLE service_role")
                own.commit()
                barrier.wait()
                decision = verify_and_consume(own, token, now=MINTED + timedelta(minutes=5))
                threading.Event().wait(0.1)  # hold the row lock so the others really collide
                own.commit()
                outcomes.append(decision.reason)

        threads = [threading.Thread(target=consume) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert sorted(outcomes) == ["already_used", "already_used", "token_accepted"]
    assert conn.execute("SELECT count(*) FROM lead_consent_audit WHERE decision = 'granted'").fetchone()[0] == 5


def test_token_signed_with_another_secret_is_rejected(conn, leads):
    forged = mint(conn, leads[0], now=MINTED, secret="another-secret-of-enough-length").token
    decision = verify_and_consume(conn, forged, now=MINTED)
    assert (decision.accepted, decision.reason) == (False, "bad_signature")
    assert conn.execute("SELECT count(*) FROM consent_tokens WHERE used_at IS NOT NULL").fetchone()[0] == 0


def test_token_moved_to_another_lead_is_rejected(conn, leads):
    own, other = leads[0], leads[1]
    token = mint(conn, own, now=MINTED).token
    # presented on another lead's consent page
    assert verify_and_consume(conn, token, now=MINTED, expected_lead_id=other).reason == "wrong_lead"
    # payload rewritten to name the other lead: the signature no longer matches
    payload, signature = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(payload + "="))
    raw[1:17] = other.bytes
    moved = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode() + "." + signature
    assert verify_and_consume(conn, moved, now=MINTED).reason == "bad_signature"
    # its database row re-pointed at the other lead
    conn.execute("UPDATE consent_tokens SET lead_id = %s", (other,))
    assert verify_and_consume(conn, token, now=MINTED).reason == "wrong_lead"
    conn.execute("UPDATE consent_tokens SET lead_id = %s", (own,))
    assert verify_and_consume(conn, token, now=MINTED, expected_lead_id=own).accepted
    assert [r[1:] for r in audit(conn)] == [("rejected", "wrong_lead"), ("rejected", "bad_signature"),
                                            ("rejected", "wrong_lead"), ("granted", "token_accepted")]


@pytest.mark.parametrize("mangle", [
    lambda t: "",
    lambda t: "not-a-token",
    lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # last character changed
    lambda t: t.replace(".", "", 1),
    lambda t: t + "A",
])
def test_malformed_or_tampered_tokens_are_rejected_and_audited(conn, leads, mangle):
    token = mint(conn, leads[0], now=MINTED).token
    decision = verify_and_consume(conn, mangle(token), now=MINTED)
    assert not decision.accepted and decision.reason in {"malformed", "bad_signature"}
    ((lead, verdict, reason),) = audit(conn)
    assert verdict == "rejected" and reason == decision.reason
    assert conn.execute("SELECT used_at FROM consent_tokens").fetchone()[0] is None


def test_unknown_token_for_a_lead_is_rejected(conn, leads):
    orphan = build_token(uuid.uuid4(), leads[2], MINTED + timedelta(days=7))  # correctly signed, never stored
    assert verify_and_consume(conn, orphan.token, now=MINTED).reason == "unknown_token"


class CountingCursor(psycopg.Cursor):
    executed = 0

    def execute(self, *args, **kwargs):  # type: ignore[override]
        CountingCursor.executed += 1
        return super().execute(*args, **kwargs)


def test_a_batch_mints_thousands_in_one_statement_and_stores_only_hashes(clean_db, leads):
    with psycopg.connect(clean_db.app_dsn, cursor_factory=CountingCursor) as c:
        c.execute("SET ROLE service_role")
        lead_ids = [leads[n % 3] for n in range(3000)]
        CountingCursor.executed = 0
        minted = mint_many(c, lead_ids, now=MINTED, batch_date=MINTED.date())
        assert CountingCursor.executed == 1
        c.commit()
        assert len({m.token for m in minted}) == 3000
        assert c.execute("SELECT count(DISTINCT nonce_hash), min(batch_date) FROM consent_tokens").fetchone() == (
            3000, MINTED.date())
        stored = " ".join(str(v) for row in c.execute("SELECT * FROM consent_tokens") for v in row)
        assert not any(m.token.split(".")[0] in stored or m.token.split(".")[1] in stored for m in minted[:50])
        # a row and the secret are enough to rebuild the same link (re-runs re-push it unchanged)
        row = c.execute("SELECT id, lead_id, expires_at FROM consent_tokens WHERE nonce_hash = %s",
                        (minted[0].nonce_hash,)).fetchone()
        assert build_token(*row).token == minted[0].token
        assert decode_token(minted[0].token, now=MINTED).lead_id == minted[0].lead_id


def test_missing_or_short_secret_is_a_clear_error(monkeypatch, conn, leads):
    monkeypatch.delenv("EQUITY_CONSENT_SECRET")
    with pytest.raises(ConsentConfigError, match="EQUITY_CONSENT_SECRET"):
        mint(conn, leads[0], now=MINTED)
    monkeypatch.setenv("EQUITY_CONSENT_SECRET", "short")
    with pytest.raises(ConsentConfigError) as error:
        mint(conn, leads[0], now=MINTED)
    assert "short" not in str(error.value)


def test_consent_url_uses_the_configured_base():
    assert consent_url("https://consent.example.com/", "abc.def") == "https://consent.example.com/consent/abc.def"
