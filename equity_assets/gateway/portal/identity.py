"""Who a broker is: passwords (argon2id), login lockout, sessions, CSRF values and API tokens.

Authentication itself (finding the account behind an e-mail, counting failures, looking up a
session) runs as ``service_role``: no broker identity exists yet. Everything after it runs as
``authenticated`` with the broker's claims (see ``access``).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
import psycopg
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

SESSION_SECRET_ENV = "EQUITY_SESSION_SECRET"
JWT_SECRET_ENV = "EQUITY_JWT_SECRET"
SESSION_TTL = timedelta(hours=12)
#: Failures allowed before the account locks; each further failure doubles the lock, up to an hour.
FREE_FAILURES = 5
MAX_LOCK = timedelta(hours=1)
MIN_PASSWORD_CHARS = 12
MIN_SECRET_BYTES = 32

_hasher = PasswordHasher()
# Verified against when the e-mail is unknown, so a miss costs as much time as a wrong password.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class NotConfigured(RuntimeError):
    """A secret the portal needs is missing from the environment (the message names the variable only)."""


def env_secret(name: str) -> bytes:
    value = os.environ.get(name, "")
    if len(value.encode()) < MIN_SECRET_BYTES:
        raise NotConfigured(f"{name} must be set to at least {MIN_SECRET_BYTES} bytes")
    return value.encode()


# --------------------------------------------------------------------------- passwords


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_CHARS:
        raise ValueError(f"a password needs at least {MIN_PASSWORD_CHARS} characters")
    return _hasher.hash(password)


def set_password(conn: psycopg.Connection, email: str, password: str) -> uuid.UUID:
    """Store a new hash for the broker with this e-mail; clears any lockout. Raises LookupError."""
    row = conn.execute("SELECT id FROM brokers WHERE lower(email) = lower(%s)", (email,)).fetchone()
    if row is None:
        raise LookupError("no broker has this e-mail")
    conn.execute(
        """INSERT INTO broker_credentials (broker_id, password_hash) VALUES (%s, %s)
           ON CONFLICT (broker_id) DO UPDATE SET password_hash = EXCLUDED.password_hash, failed_attempts = 0,
                 locked_until = NULL, password_changed_at = now()""",
        (row[0], hash_password(password)),
    )
    # A new password ends every open session.
    conn.execute("UPDATE broker_sessions SET revoked_at = now() WHERE broker_id = %s AND revoked_at IS NULL", (row[0],))
    return row[0]


@dataclass(frozen=True)
class LoginResult:
    broker_id: uuid.UUID | None
    locked_until: datetime | None = None

    @property
    def ok(self) -> bool:
        return self.broker_id is not None


def lock_for(failures: int) -> timedelta | None:
    """How long the account locks after this many consecutive failures (None: not yet)."""
    if failures < FREE_FAILURES:
        return None
    return min(timedelta(seconds=30 * 2 ** min(failures - FREE_FAILURES, 7)), MAX_LOCK)


def check_login(conn: psycopg.Connection, email: str, password: str, now: datetime) -> LoginResult:
    """Verify e-mail + password under the lockout rule, recording the outcome (same transaction)."""
    row = conn.execute(
        """SELECT b.id, c.password_hash, c.failed_attempts, c.locked_until
             FROM brokers b JOIN broker_credentials c ON c.broker_id = b.id
            WHERE lower(b.email) = lower(%s) AND b.active
            FOR UPDATE OF c""",
        (email.strip(),),
    ).fetchone()
    if row is None:
        _verify(_DUMMY_HASH, password)
        return LoginResult(None)
    broker_id, stored, failures, locked_until = row
    if locked_until is not None and locked_until > now:
        return LoginResult(None, locked_until)  # not even checked: guessing during a lock teaches nothing
    if _verify(stored, password):
        conn.execute("UPDATE broker_credentials SET failed_attempts = 0, locked_until = NULL, last_login_at = %s "
                     "WHERE broker_id = %s", (now, broker_id))
        if _hasher.check_needs_rehash(stored):
            conn.execute("UPDATE broker_credentials SET password_hash = %s WHERE broker_id = %s",
                         (_hasher.hash(password), broker_id))
        return LoginResult(broker_id)
    failures += 1
    lock = lock_for(failures)
    until = now + lock if lock else None
    conn.execute("UPDATE broker_credentials SET failed_attempts = %s, locked_until = %s WHERE broker_id = %s",
                 (failures, until, broker_id))
    return LoginResult(None, until)


def _verify(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


# --------------------------------------------------------------------------- sessions


def _sign(purpose: str, value: str) -> str:
    return hmac.new(env_secret(SESSION_SECRET_ENV), f"{purpose}.{value}".encode(), hashlib.sha256).hexdigest()


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def open_session(conn: psycopg.Connection, broker_id: uuid.UUID, now: datetime) -> str:
    """A new session; returns the cookie value ``<token>.<signature>``."""
    token = secrets.token_urlsafe(32)
    conn.execute("INSERT INTO broker_sessions (token_sha256, broker_id, created_at, expires_at) VALUES (%s, %s, %s, %s)",
                 (_token_hash(token), broker_id, now, now + SESSION_TTL))
    return f"{token}.{_sign('session', token)}"


def _token_of(cookie: str) -> str | None:
    token, _, signature = cookie.rpartition(".")
    if not token or not hmac.compare_digest(signature.encode(), _sign("session", token).encode()):
        return None
    return token


def session_broker(conn: psycopg.Connection, cookie: str, now: datetime) -> uuid.UUID | None:
    """The broker of a live session cookie; None when forged, expired, revoked or the broker is inactive."""
    token = _token_of(cookie)
    if token is None:
        return None
    row = conn.execute(
        """SELECT s.broker_id FROM broker_sessions s JOIN brokers b ON b.id = s.broker_id
            WHERE s.token_sha256 = %s AND s.revoked_at IS NULL AND s.expires_at > %s AND b.active""",
        (_token_hash(token), now),
    ).fetchone()
    return row[0] if row else None


def close_session(conn: psycopg.Connection, cookie: str) -> None:
    token = _token_of(cookie)
    if token is not None:
        conn.execute("UPDATE broker_sessions SET revoked_at = now() WHERE token_sha256 = %s AND revoked_at IS NULL",
                     (_token_hash(token),))


def csrf_value(binding: str) -> str:
    """The form value that proves a POST came from our page: an HMAC of the session (or login) cookie."""
    return _sign("csrf", binding)


def csrf_ok(binding: str | None, submitted: str | None) -> bool:
    if not binding or not submitted:
        return False
    return hmac.compare_digest(submitted.encode(), csrf_value(binding).encode())


# --------------------------------------------------------------------------- API tokens (Supabase-style JWT)

JWT_AUDIENCE = "authenticated"


def issue_token(broker_id: uuid.UUID, ttl: timedelta = timedelta(hours=1), now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    claims = {"sub": str(broker_id), "role": "authenticated", "aud": JWT_AUDIENCE,
              "iat": int(now.timestamp()), "exp": int((now + ttl).timestamp())}
    return jwt.encode(claims, env_secret(JWT_SECRET_ENV), algorithm="HS256")


def token_broker(token: str) -> uuid.UUID | None:
    """The broker a bearer token names, or None: HS256 only, signature, exp, aud, role and sub all checked."""
    try:
        claims = jwt.decode(token, env_secret(JWT_SECRET_ENV), algorithms=["HS256"], audience=JWT_AUDIENCE,
                            options={"require": ["sub", "role", "exp", "aud"]})
        if claims.get("role") != "authenticated":
            return None
        return uuid.UUID(str(claims["sub"]))
    except (jwt.InvalidTokenError, ValueError):
        return None
