"""Written consent captured by the consent page: what the page shows, recording it, revoking it.

The page a lead opens from the campaign e-mail shows their broker, the phone number the consent
covers (editable) and the active written-consent disclosure. Submitting it verifies and consumes
the token and records the consent in one transaction, so the token is spent exactly when the
consent is stored; 50 simultaneous submissions of one link record one consent. Revoking from the
confirmation page needs the same link (even once used or expired: honouring a revocation is never
harmful) and is audited like every other consent decision.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import phonenumbers
import psycopg

from ..observe.events import Event, Stage, record_event
from ..security.consent import ConsentDecision, ConsentTokenError, decode_token, verify_and_consume

STAGE = Stage.CONSENT
FORM_METHOD = "form"
LINK_REVOCATION_METHOD = "form_revocation_link"
PHONE_SUPPRESSION = timedelta(days=5 * 365)


@dataclass(frozen=True)
class ConsentPage:
    """What the consent page shows. ``state``: open, used, expired or invalid."""

    state: str
    lead_id: uuid.UUID | None = None
    first_name: str | None = None
    broker_name: str | None = None
    phone: str | None = None
    disclosure_version: str | None = None
    disclosure: str | None = None


class PhoneError(ValueError):
    """The phone number typed on the form is not a valid US number."""


def normalize_phone(raw: str) -> str:
    """E.164 form of a US (or +-prefixed international) number, or :class:`PhoneError`."""
    text = (raw or "").strip()
    if not text or len(text) > 32:
        raise PhoneError("Please enter the phone number we may call, for example (555) 201-8870.")
    try:
        number = phonenumbers.parse(text, "US")
    except phonenumbers.NumberParseException:
        raise PhoneError("That does not look like a phone number. Please check it and try again.") from None
    if not phonenumbers.is_valid_number(number):
        raise PhoneError("That phone number is not valid. Please check the area code and digits.")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def display_phone(e164: str | None) -> str:
    """A number as people write it: (555) 201-8870 for US numbers."""
    if not e164:
        return ""
    try:
        number = phonenumbers.parse(e164, "US")
    except phonenumbers.NumberParseException:
        return e164
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)


def active_disclosure(conn: psycopg.Connection) -> tuple[str, str]:
    """(version, body template) of the disclosure shown to new visitors."""
    row = conn.execute("SELECT version, body FROM consent_disclosures WHERE active").fetchone()
    if row is None:
        raise RuntimeError("no active consent disclosure")
    return row[0], row[1]


def load_page(conn: psycopg.Connection, token: str, *, now: datetime, secret: bytes | str | None = None) -> ConsentPage:
    """The page state of a link, without spending it."""
    try:
        claims = decode_token(token, now=now, secret=secret)
    except ConsentTokenError as exc:
        return ConsentPage("expired" if exc.reason == "expired" else "invalid", lead_id=exc.lead_id)
    row = conn.execute(
        """SELECT t.lead_id, t.used_at, t.expires_at, l.first_name, l.phone, l.consented_phone, b.name
           FROM consent_tokens t JOIN leads l ON l.id = t.lead_id LEFT JOIN brokers b ON b.id = l.assigned_broker_id
           WHERE t.nonce_hash = %s""",
        (claims.nonce_hash,),
    ).fetchone()
    if row is None or row[0] != claims.lead_id:
        return ConsentPage("invalid")
    lead_id, used_at, expires_at, first_name, phone, consented_phone, broker = row
    if used_at is not None:
        return ConsentPage("used", lead_id=lead_id, broker_name=broker)
    if expires_at < now:
        return ConsentPage("expired", lead_id=lead_id)
    version, body = active_disclosure(conn)
    broker_name = broker or "your mortgage broker"
    return ConsentPage("open", lead_id=lead_id, first_name=first_name, broker_name=broker_name,
                       phone=consented_phone or phone, disclosure_version=version,
                       disclosure=body.replace("{broker}", broker_name))


def record_consent(conn: psycopg.Connection, token: str, *, phone: str, disclosure_version: str, now: datetime,
                   ip: str | None, user_agent: str | None, secret: bytes | str | None = None) -> ConsentDecision:
    """Verify and consume the token and record the consent, in the caller's transaction."""
    decision = verify_and_consume(conn, token, now=now, secret=secret, phone_number=phone,
                                  disclosure_version=disclosure_version, method=FORM_METHOD, ip=ip,
                                  user_agent=user_agent)
    if decision.accepted:
        conn.execute(
            """UPDATE leads SET consent = true, consented_at = %s, consent_method = %s, consented_phone = %s
               WHERE id = %s""",
            (now, FORM_METHOD, phone, decision.lead_id),
        )
        record_event(conn, Event.CONSENT_GRANTED, stage=STAGE, lead_id=str(decision.lead_id), count=1,
                     payload={"disclosure_version": disclosure_version},
                     idempotency_key=f"consent_granted:{decision.token_id}")
    return decision


def link_lead(conn: psycopg.Connection, token: str, *, now: datetime, secret: bytes | str | None = None) -> uuid.UUID | None:
    """The lead of a correctly signed link that we issued, used or expired alike; None otherwise."""
    try:
        claims = decode_token(token, now=now, secret=secret)
        lead_id, hashed = claims.lead_id, claims.nonce_hash
    except ConsentTokenError as exc:
        if exc.reason != "expired":
            return None
        lead_id, hashed = exc.lead_id, exc.nonce_hash
    row = conn.execute("SELECT lead_id FROM consent_tokens WHERE nonce_hash = %s", (hashed,)).fetchone()
    return lead_id if row is not None and row[0] == lead_id else None


def revoke_by_link(conn: psycopg.Connection, token: str, *, now: datetime, ip: str | None, user_agent: str | None,
                   secret: bytes | str | None = None) -> bool:
    """Withdraw the lead's consent to calls: consent off, consented phone on the do-not-call list, audited."""
    lead_id = link_lead(conn, token, now=now, secret=secret)
    if lead_id is None:
        return False
    # The number is on the do-not-call list from now on, so it is no longer a usable channel either.
    row = conn.execute(
        """UPDATE leads SET consent = false,
                  phone_verified = phone_verified AND phone IS DISTINCT FROM coalesce(consented_phone, phone)
           WHERE id = %s RETURNING assigned_broker_id, consented_phone, phone""",
        (lead_id,),
    ).fetchone()
    broker_id, consented_phone, phone = row
    number = consented_phone or phone
    if number:
        conn.execute(
            """INSERT INTO suppression_list (channel, value, reason, source, lead_id, expires_at)
               VALUES ('phone', %s, 'consent revoked on the consent page', 'revocation', %s, now() + %s)
               ON CONFLICT (channel, value) DO NOTHING""",
            (number, lead_id, PHONE_SUPPRESSION),
        )
    conn.execute(
        """INSERT INTO lead_consent_audit (lead_id, broker_id, decision, reason, phone_number, method, ip, user_agent,
                                           created_at)
           VALUES (%s, %s, 'revoked', 'revoked on the consent page', %s, %s, %s, %s, %s)""",
        (lead_id, broker_id, number, LINK_REVOCATION_METHOD, ip, user_agent, now),
    )
    record_event(conn, Event.CONSENT_REVOKED, stage=STAGE, lead_id=str(lead_id), count=1,
                 payload={"method": LINK_REVOCATION_METHOD})
    return True
