"""Checking provider webhooks: a shared-secret header, a bearer credential, or an HMAC plan.

Secrets come from the environment at call time, comma-separated so an old and a new one can be
active together while a provider's registration is rotated. Every candidate secret is compared
with ``hmac.compare_digest`` and none is skipped, so timing does not reveal which one matched.
Failures raise :class:`~equity_assets.security.signing.SignatureError` whose ``reason`` names the
check; neither the reason nor the detail ever contains a secret.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping, Sequence

from .signing import SecretError, SignatureError, check_timestamp_window

INSTANTLY_SECRETS_ENV = "EQUITY_INSTANTLY_WEBHOOK_SECRETS"
VAPI_SECRETS_ENV = "EQUITY_VAPI_WEBHOOK_SECRETS"
#: ``bearer`` (Authorization: Bearer / X-Vapi-Secret) or ``hmac`` (x-signature over "{ts}.{body}").
VAPI_AUTH_ENV = "EQUITY_VAPI_WEBHOOK_AUTH"
#: The custom header we register with Instantly (it has no signature scheme of its own).
INSTANTLY_SECRET_HEADER = "x-equity-webhook-secret"


def env_secrets(name: str) -> list[str]:
    """Active secrets in ``name`` (comma-separated, newest first); an empty list is a config error."""
    found = [s.strip() for s in os.environ.get(name, "").split(",") if s.strip()]
    if not found:
        raise SecretError(f"{name} is not set")
    return found


def _matching_index(given: str, secrets: Sequence[str]) -> int | None:
    given_bytes = given.encode("utf-8")
    matched: int | None = None
    for i, secret in enumerate(secrets):
        if hmac.compare_digest(given_bytes, secret.encode("utf-8")) and matched is None:
            matched = i
    return matched


def check_shared_secret(headers: Mapping[str, str], header: str, secrets: Sequence[str]) -> int:
    """Index of the secret the header carries; ``missing_secret_header`` / ``bad_secret`` otherwise."""
    given = headers.get(header)
    if not given:
        raise SignatureError("missing_secret_header", f"the {header} header is required")
    index = _matching_index(given.strip(), secrets)
    if index is None:
        raise SignatureError("bad_secret", f"the {header} header does not match a registered secret")
    return index


def check_bearer(headers: Mapping[str, str], secrets: Sequence[str]) -> int:
    """``Authorization: Bearer <secret>``, or VAPI's legacy ``X-Vapi-Secret: <secret>``."""
    scheme, _, token = headers.get("authorization", "").partition(" ")
    given = token.strip() if scheme.lower() == "bearer" else headers.get("x-vapi-secret", "").strip()
    if not given:
        raise SignatureError("missing_credential", "Authorization: Bearer or X-Vapi-Secret is required")
    index = _matching_index(given, secrets)
    if index is None:
        raise SignatureError("bad_credential", "the credential does not match a configured secret")
    return index


def hmac_timestamp_signature(body: bytes, secret: str, timestamp: str) -> str:
    """Hex HMAC-SHA256 of ``"{timestamp}.{body}"`` (what VAPI's HMAC plan sends in x-signature)."""
    return hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256).hexdigest()


def check_timestamp_hmac(body: bytes, headers: Mapping[str, str], secrets: Sequence[str], *, now: float,
                         tolerance: int) -> int:
    """``x-signature`` = hex HMAC of ``"{x-timestamp}.{raw body}"`` within ±tolerance seconds."""
    signature, timestamp = headers.get("x-signature", ""), headers.get("x-timestamp", "").strip()
    if not signature:
        raise SignatureError("missing_signature", "the x-signature header is required")
    if not timestamp:
        raise SignatureError("missing_timestamp", "the x-timestamp header is required")
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 13:
        raise SignatureError("malformed_timestamp", "x-timestamp must be unix seconds or milliseconds")
    seconds = int(timestamp) / 1000 if len(timestamp) == 13 else int(timestamp)
    check_timestamp_window(int(seconds), now, tolerance)
    given = signature.strip().lower().encode("ascii", "replace")
    matched: int | None = None
    for i, secret in enumerate(secrets):
        expected = hmac_timestamp_signature(body, secret, timestamp).encode("ascii")
        if hmac.compare_digest(given, expected) and matched is None:
            matched = i
    if matched is None:
        raise SignatureError("bad_signature", "x-signature does not match the body")
    return matched
