"""Consent tokens (docs/compliance.md): signed, single-use links a lead follows to give consent.

Wire format: ``<base64url payload>.<base64url signature>``, no padding, URL-safe.

* payload (41 bytes): version ``1`` | lead id (16) | nonce (16) | expiry, unix seconds (8, big-endian)
* signature: HMAC-SHA256 over ``b"equity-consent.v1." + <base64url payload>`` keyed with the UTF-8
  bytes of ``EQUITY_CONSENT_SECRET`` (read at call time, never logged, never in an error).

A token is valid up to and including its expiry second (7 days after minting, rounded up), for
its own lead, once. ``consent_tokens`` holds the SHA-256 of each nonce, never the token, so a
database reader cannot mail themselves a working link. The nonce is itself an HMAC of the token
row's random id, which lets the pipeline rebuild an unused token from its row and the secret (a
re-run re-pushes the same link instead of minting a second one); after a secret rotation the
rebuilt hash no longer matches and callers mint a fresh token.

Every verification decision lands in ``lead_consent_audit`` (``granted`` / ``rejected`` + reason).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
import os
import re
import struct
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import psycopg
from psycopg import sql

#: Environment variable holding the signing secret.
SECRET_ENV = "EQUITY_CONSENT_SECRET"
#: How long a link stays valid.
TOKEN_TTL = timedelta(days=7)
#: Shortest secret accepted: an HMAC key shorter than this is guessable.
MIN_SECRET_CHARS = 16

_VERSION = 1
_PAYLOAD = struct.Struct(">B16s16sQ")
_SIGNED_PREFIX = b"equity-consent.v1."
_NONCE_PREFIX = b"equity-consent-nonce.v1."
# 41-byte payload → 55 chars, 32-byte signature → 43 chars; anything else is not ours.
_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{55}\.[A-Za-z0-9_-]{43}")


class ConsentConfigError(RuntimeError):
    """The consent secret is missing or too short (the message never contains it)."""


@dataclass(frozen=True)
class MintedToken:
    """A token and the ``consent_tokens`` row that makes it single use."""

    token_id: uuid.UUID
    lead_id: uuid.UUID
    token: str
    nonce_hash: str
    expires_at: datetime


@dataclass(frozen=True)
class TokenClaims:
    """What a correctly signed, unexpired token says."""

    lead_id: uuid.UUID
    nonce_hash: str
    expires_at: datetime


@dataclass(frozen=True)
class ConsentDecision:
    """Outcome of :func:`verify_and_consume`; ``reason`` is a stable code for rejections."""

    accepted: bool
    reason: str
    lead_id: uuid.UUID | None = None
    token_id: uuid.UUID | None = None


class ConsentTokenError(Exception):
    """A token failed verification. ``reason``: malformed, bad_signature or expired."""

    def __init__(self, reason: str, *, lead_id: uuid.UUID | None = None, nonce_hash: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.lead_id = lead_id
        self.nonce_hash = nonce_hash


def consent_secret() -> bytes:
    """The signing key from ``EQUITY_CONSENT_SECRET``, read now (not at import)."""
    value = os.environ.get(SECRET_ENV, "")
    if len(value) < MIN_SECRET_CHARS:
        raise ConsentConfigError(f"{SECRET_ENV} must be set to at least {MIN_SECRET_CHARS} characters")
    return value.encode()


def _key(secret: bytes | str | None) -> bytes:
    if secret is None:
        return consent_secret()
    return secret.encode() if isinstance(secret, str) else secret


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# hmac.digest is the one-shot C path: a batch builds 250,000 tokens twice (mint, then push).
def _signature(key: bytes, payload_b64: str) -> bytes:
    return hmac.digest(key, _SIGNED_PREFIX + payload_b64.encode("ascii"), "sha256")


def _nonce(key: bytes, token_id: uuid.UUID) -> bytes:
    return hmac.digest(key, _NONCE_PREFIX + token_id.bytes, "sha256")[:16]


def nonce_hash(nonce: bytes) -> str:
    """What ``consent_tokens.nonce_hash`` stores: hex SHA-256 of the nonce."""
    return hashlib.sha256(nonce).hexdigest()


def expiry_for(now: datetime) -> datetime:
    """``now`` + 7 days, rounded up to a whole second (the token carries whole seconds)."""
    return datetime.fromtimestamp(math.ceil((now + TOKEN_TTL).timestamp()), tz=UTC)


def build_token(
    token_id: uuid.UUID, lead_id: uuid.UUID, expires_at: datetime, *, secret: bytes | str | None = None
) -> MintedToken:
    """The token of a ``consent_tokens`` row (deterministic: same row and secret, same token)."""
    key = _key(secret)
    nonce = _nonce(key, token_id)
    expiry_s = int(expires_at.timestamp())
    payload_b64 = _b64encode(_PAYLOAD.pack(_VERSION, lead_id.bytes, nonce, expiry_s))
    token = f"{payload_b64}.{_b64encode(_signature(key, payload_b64))}"
    return MintedToken(token_id, lead_id, token, nonce_hash(nonce), datetime.fromtimestamp(expiry_s, tz=UTC))


def mint_many(
    conn: psycopg.Connection,
    lead_ids: Sequence[uuid.UUID],
    *,
    now: datetime,
    batch_date: date | None = None,
    secret: bytes | str | None = None,
) -> list[MintedToken]:
    """One token per lead, stored with a single INSERT (a batch mints thousands at once)."""
    if not lead_ids:
        return []
    key = _key(secret)
    expires_at = expiry_for(now)
    minted = [build_token(uuid.uuid4(), uuid.UUID(str(lead)), expires_at, secret=key) for lead in lead_ids]
    conn.execute(
        """INSERT INTO consent_tokens (id, lead_id, nonce_hash, batch_date, issued_at, expires_at)
           SELECT t.id, t.lead_id, t.nonce_hash, %s, %s, %s
           FROM unnest(%s::uuid[], %s::uuid[], %s::text[]) AS t(id, lead_id, nonce_hash)""",
        (batch_date, now, expires_at,
         [m.token_id for m in minted], [m.lead_id for m in minted], [m.nonce_hash for m in minted]),
    )
    return minted


def mint_for_numbered(
    conn: psycopg.Connection,
    source: str,
    count: int,
    *,
    now: datetime,
    batch_date: date | None = None,
    secret: bytes | str | None = None,
) -> list[uuid.UUID]:
    """One token per row of ``source``, a relation of ``(n, lead_id)`` numbered 1..``count``.

    For a batch that is already in a table: only the token ids and nonce hashes travel (as
    arrays, the ids in binary), not the leads. Returns the token ids in ``n`` order.
    """
    if count <= 0:
        return []
    key = _key(secret)
    token_ids = [uuid.uuid4() for _ in range(count)]
    inserted = conn.execute(
        sql.SQL("""INSERT INTO consent_tokens (id, lead_id, nonce_hash, batch_date, issued_at, expires_at)
                   SELECT t.id, s.lead_id, t.nonce_hash, %s, %s, %s
                   FROM {} s
                   JOIN unnest(%b::uuid[], %s::text[]) WITH ORDINALITY AS t(id, nonce_hash, n) ON t.n = s.n""")
        .format(sql.Identifier(source)),
        (batch_date, now, expiry_for(now), token_ids, [nonce_hash(_nonce(key, t)) for t in token_ids]),
    ).rowcount
    if inserted != count:
        raise ValueError(f"{source} is not numbered 1..{count}: {inserted} tokens would be minted")
    return token_ids


def mint(
    conn: psycopg.Connection,
    lead_id: uuid.UUID,
    *,
    now: datetime,
    batch_date: date | None = None,
    secret: bytes | str | None = None,
) -> MintedToken:
    """One token for one lead (see :func:`mint_many` for batches)."""
    return mint_many(conn, [lead_id], now=now, batch_date=batch_date, secret=secret)[0]


def consent_url(base_url: str, token: str) -> str:
    """The link a lead follows: ``<base_url>/consent/<token>``."""
    return f"{base_url.rstrip('/')}/consent/{token}"


def decode_token(token: str, *, now: datetime, secret: bytes | str | None = None) -> TokenClaims:
    """Check shape, signature (constant time) and expiry; raises :class:`ConsentTokenError`.

    Does not touch the database: use it to render a page, never to accept consent.
    """
    key = _key(secret)
    if not isinstance(token, str) or not _TOKEN_SHAPE.fullmatch(token):
        raise ConsentTokenError("malformed")
    payload_b64, signature_b64 = token.split(".")
    try:
        payload, signature = _b64decode(payload_b64), _b64decode(signature_b64)
        version, lead_bytes, nonce, expiry_s = _PAYLOAD.unpack(payload)
    except (binascii.Error, ValueError, struct.error):
        raise ConsentTokenError("malformed") from None
    # Only the canonical encoding counts: spare low bits in the last character must not give
    # one signature several spellings.
    if _b64encode(payload) != payload_b64 or _b64encode(signature) != signature_b64:
        raise ConsentTokenError("malformed")
    lead_id, hashed = uuid.UUID(bytes=lead_bytes), nonce_hash(nonce)
    if not hmac.compare_digest(signature, _signature(key, payload_b64)) or version != _VERSION:
        raise ConsentTokenError("bad_signature", lead_id=lead_id, nonce_hash=hashed)
    # Valid through the expiry second itself: exactly 7 days after minting still works.
    if now.timestamp() > expiry_s:
        raise ConsentTokenError("expired", lead_id=lead_id, nonce_hash=hashed)
    return TokenClaims(lead_id, hashed, datetime.fromtimestamp(expiry_s, tz=UTC))


# Single use under concurrency: the row lock makes a second consumer wait, then its WHERE
# re-check sees used_at set and it updates nothing.
_CONSUME_SQL = """
UPDATE consent_tokens SET used_at = %(now)s
WHERE nonce_hash = %(nonce_hash)s AND lead_id = %(lead_id)s AND used_at IS NULL AND expires_at >= %(now)s
RETURNING id
"""

_AUDIT_SQL = """
INSERT INTO lead_consent_audit (lead_id, broker_id, decision, reason, token_nonce_hash, phone_number,
                                disclosure_version, method, ip, user_agent, created_at)
SELECT l.id, l.assigned_broker_id, %(decision)s, %(reason)s, %(nonce_hash)s, %(phone_number)s,
       %(disclosure_version)s, %(method)s, %(ip)s, %(user_agent)s, %(now)s
FROM (SELECT 1) AS one LEFT JOIN leads l ON l.id = %(lead_id)s
"""


def _why_not_consumed(conn: psycopg.Connection, claims: TokenClaims, now: datetime) -> str:
    row = conn.execute(
        "SELECT lead_id, used_at, expires_at FROM consent_tokens WHERE nonce_hash = %s", (claims.nonce_hash,)
    ).fetchone()
    if row is None:
        return "unknown_token"
    lead_id, used_at, expires_at = row
    if lead_id != claims.lead_id:
        return "wrong_lead"
    if used_at is not None:
        return "already_used"
    return "expired" if expires_at < now else "unknown_token"


def verify_and_consume(
    conn: psycopg.Connection,
    token: str,
    *,
    now: datetime,
    expected_lead_id: uuid.UUID | None = None,
    secret: bytes | str | None = None,
    phone_number: str | None = None,
    disclosure_version: str | None = None,
    method: str | None = None,
    ip: str | None = None,
    user_agent: str | None = None,
) -> ConsentDecision:
    """Accept ``token`` at most once, and audit the decision either way.

    Call it inside the transaction that records the consent (phone, disclosure, IP, user agent):
    if that transaction rolls back, the token is not spent and the audit row disappears with it.
    ``expected_lead_id`` rejects a token presented for another lead than its own.
    """
    claims: TokenClaims | None = None
    token_id: uuid.UUID | None = None
    try:
        claims = decode_token(token, now=now, secret=secret)
    except ConsentTokenError as exc:
        reason, lead_id, hashed = exc.reason, exc.lead_id, exc.nonce_hash
    else:
        lead_id, hashed = claims.lead_id, claims.nonce_hash
        if expected_lead_id is not None and uuid.UUID(str(expected_lead_id)) != claims.lead_id:
            reason = "wrong_lead"
        else:
            row = conn.execute(
                _CONSUME_SQL, {"now": now, "nonce_hash": claims.nonce_hash, "lead_id": claims.lead_id}
            ).fetchone()
            token_id = row[0] if row else None
            reason = "token_accepted" if row else _why_not_consumed(conn, claims, now)
    accepted = token_id is not None
    conn.execute(
        _AUDIT_SQL,
        {
            "decision": "granted" if accepted else "rejected",
            "reason": reason,
            "nonce_hash": hashed,
            "lead_id": lead_id,
            "phone_number": phone_number if accepted else None,
            "disclosure_version": disclosure_version if accepted else None,
            "method": method,
            "ip": ip,
            "user_agent": user_agent,
            "now": now,
        },
    )
    return ConsentDecision(accepted=accepted, reason=reason, lead_id=lead_id, token_id=token_id)
