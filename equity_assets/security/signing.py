"""Request signing and verification for the gateway (docs/architecture.md, "Security").

Two schemes, both HMAC-SHA256 over the **raw body bytes**, both with a ±300 s timestamp window
(inclusive: exactly 300 s old or ahead is accepted) and several active secrets for rotation:

* **Ours** (also VAPI's HMAC plan format): ``X-Timestamp`` = unix seconds,
  ``X-Signature`` = hex HMAC-SHA256 of ``b"{timestamp}." + body`` keyed with the UTF-8 bytes of
  the secret, ``X-Content-SHA256`` = hex SHA-256 of the body.
* **Standard Webhooks**: ``webhook-id``, ``webhook-timestamp``, ``webhook-signature`` (space-separated
  ``v1,<base64>`` entries, any one may match); signed content ``b"{id}.{timestamp}." + body``;
  secret ``whsec_<base64 key bytes>``.

Bodies may be large, so verification is incremental: a verifier is built from the headers (which
fix the signed prefix), fed the body chunk by chunk, then asked to ``verify(now)``. One-shot helpers
wrap the same code for small bodies. Every comparison is ``hmac.compare_digest`` over bytes.

Secrets are read from ``EQUITY_UPLOAD_SECRETS`` (comma-separated) at call time and never appear in
an exception message or a log line.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

#: Environment variable holding the active upload secrets, comma-separated, newest first.
SECRETS_ENV = "EQUITY_UPLOAD_SECRETS"
#: Accepted clock difference between signer and verifier, in seconds (inclusive).
DEFAULT_TOLERANCE_S = 300

TIMESTAMP_HEADER = "x-timestamp"
SIGNATURE_HEADER = "x-signature"
CONTENT_SHA256_HEADER = "x-content-sha256"

WEBHOOK_ID_HEADER = "webhook-id"
WEBHOOK_TIMESTAMP_HEADER = "webhook-timestamp"
WEBHOOK_SIGNATURE_HEADER = "webhook-signature"
WEBHOOK_SECRET_PREFIX = "whsec_"

# Unix seconds as plain digits; 12 digits reach year 33658, anything longer is not a timestamp.
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_HEX_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


class SignatureError(Exception):
    """A request failed verification; ``reason`` is a stable code, ``detail`` a safe explanation.

    Reasons: ``missing_headers``, ``malformed_timestamp``, ``timestamp_too_old``,
    ``timestamp_in_future``, ``content_hash_mismatch``, ``bad_signature``. Neither field ever holds
    a secret or the expected signature.
    """

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class SecretError(ValueError):
    """A configured secret is unusable (empty, or not valid base64 for Standard Webhooks)."""


# --------------------------------------------------------------------------- secrets


def upload_secrets() -> list[str]:
    """The active secrets from ``EQUITY_UPLOAD_SECRETS``, read now; blanks are dropped."""
    raw = os.environ.get(SECRETS_ENV, "")
    return [s.strip() for s in raw.split(",") if s.strip()]


def hmac_key(secret: str) -> bytes:
    """Our scheme's key: the UTF-8 bytes of the secret. An empty key would sign for anyone."""
    if not secret:
        raise SecretError("an empty secret cannot sign or verify")
    return secret.encode("utf-8")


def decode_standard_webhook_secret(secret: str) -> bytes:
    """Key bytes of a Standard Webhooks secret (``whsec_`` prefix optional, padding optional)."""
    encoded = secret.strip().removeprefix(WEBHOOK_SECRET_PREFIX)
    if not encoded:
        raise SecretError("empty Standard Webhooks secret")
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise SecretError("Standard Webhooks secret is not valid base64") from None
    if not key:
        raise SecretError("empty Standard Webhooks secret")
    return key


def is_standard_webhook_secret(secret: str) -> bool:
    """True for secrets written in the Standard Webhooks form (``whsec_…``)."""
    return secret.startswith(WEBHOOK_SECRET_PREFIX)


# --------------------------------------------------------------------------- shared pieces


def _lower_keys(headers: Mapping[str, str]) -> dict[str, str]:
    """Header lookup that ignores case, whatever mapping the caller has."""
    return {k.lower(): v for k, v in headers.items()}


def _parse_timestamp(raw: str) -> int:
    value = raw.strip()
    if not _TIMESTAMP.fullmatch(value):
        raise SignatureError("malformed_timestamp", "timestamp must be integer unix seconds")
    return int(value)


def check_timestamp_window(timestamp: int, now: float, tolerance: int = DEFAULT_TOLERANCE_S) -> None:
    """Raise unless ``timestamp`` is within ``tolerance`` seconds of ``now`` (boundary included).

    Compared in whole seconds (``now`` floored), as the timestamp is: exactly ``tolerance`` seconds
    old or ahead is accepted whatever the sub-second, one more second is refused."""
    age = math.floor(now) - timestamp
    if age > tolerance:
        raise SignatureError("timestamp_too_old", f"timestamp is more than {tolerance} s in the past")
    if -age > tolerance:
        raise SignatureError("timestamp_in_future", f"timestamp is more than {tolerance} s in the future")


class _PrefixedMacs:
    """One running HMAC-SHA256 per key, all seeded with the same signed prefix."""

    def __init__(self, keys: Sequence[bytes], prefix: bytes):
        self._macs = [hmac.new(k, prefix, hashlib.sha256) for k in keys]

    def update(self, chunk: bytes) -> None:
        for mac in self._macs:
            mac.update(chunk)

    def digests(self) -> list[bytes]:
        return [mac.digest() for mac in self._macs]


class BodyVerifier(Protocol):
    """What the gateway needs from a verifier, whichever scheme the request used."""

    scheme: str

    def check_headers(self, now: float) -> None: ...

    def update(self, chunk: bytes) -> None: ...

    def verify(self, now: float) -> int: ...

    @property
    def content_sha256(self) -> str: ...

    @property
    def byte_count(self) -> int: ...


class _StreamingBody:
    """Running SHA-256 and size of the body, plus the per-secret HMACs once headers allow."""

    def __init__(self) -> None:
        self._sha = hashlib.sha256()
        self._macs: _PrefixedMacs | None = None
        self._size = 0

    def update(self, chunk: bytes) -> None:
        """Feed the next piece of the raw body."""
        self._sha.update(chunk)
        if self._macs is not None:
            self._macs.update(chunk)
        self._size += len(chunk)

    @property
    def content_sha256(self) -> str:
        """Hex SHA-256 of the bytes fed so far."""
        return self._sha.hexdigest()

    @property
    def byte_count(self) -> int:
        """Bytes fed so far."""
        return self._size


def _require(secrets: Sequence[str]) -> None:
    if not secrets:
        raise SecretError("no secret configured")


class _SignedBody(_StreamingBody):
    """Header checks shared by both schemes: required headers present, timestamp well-formed and
    inside the window. A header problem is kept (the body is still hashed, so the size limit
    applies) and reported by ``check_headers`` / ``verify``."""

    def __init__(self, headers: Mapping[str, str], keys: list[bytes], *, required: tuple[str, ...],
                 timestamp_header: str, signed_prefix: Callable[[Mapping[str, str], int], bytes],
                 tolerance: int) -> None:
        super().__init__()
        self._headers = _lower_keys(headers)
        self._tolerance = tolerance
        self._timestamp: int | None = None
        self._header_error: SignatureError | None = None
        try:
            missing = [name for name in required if not self._headers.get(name)]
            if missing:
                raise SignatureError("missing_headers", f"missing header(s): {', '.join(missing)}")
            self._timestamp = _parse_timestamp(self._headers[timestamp_header])
        except SignatureError as exc:
            self._header_error = exc
        else:
            self._macs = _PrefixedMacs(keys, signed_prefix(self._headers, self._timestamp))

    def check_headers(self, now: float) -> None:
        """Everything that can be decided without the body: presence, format, time window."""
        if self._header_error is not None:
            raise self._header_error
        assert self._timestamp is not None
        check_timestamp_window(self._timestamp, now, self._tolerance)


# --------------------------------------------------------------------------- our scheme


class RequestSigner:
    """Incremental signer for our scheme: feed the body, then take ``headers()``."""

    def __init__(self, secret: str, timestamp: int):
        self._timestamp = int(timestamp)
        self._mac = hmac.new(hmac_key(secret), f"{self._timestamp}.".encode(), hashlib.sha256)
        self._sha = hashlib.sha256()

    def update(self, chunk: bytes) -> None:
        """Feed the next piece of the raw body."""
        self._mac.update(chunk)
        self._sha.update(chunk)

    def headers(self) -> dict[str, str]:
        """``X-Timestamp``, ``X-Signature`` and ``X-Content-SHA256`` for the body fed so far."""
        return {
            "X-Timestamp": str(self._timestamp),
            "X-Signature": self._mac.hexdigest(),
            "X-Content-SHA256": self._sha.hexdigest(),
        }


def sign_request(body: bytes, secret: str, timestamp: int) -> dict[str, str]:
    """Our scheme's headers for ``body``, signed with ``secret`` at ``timestamp`` (unix seconds)."""
    signer = RequestSigner(secret, timestamp)
    signer.update(body)
    return signer.headers()


class SignatureVerifier(_SignedBody):
    """Streaming verifier for our scheme (``X-Timestamp`` / ``X-Signature`` / ``X-Content-SHA256``).

    The timestamp header fixes the signed prefix, so it is read up front; ``check_headers(now)``
    can reject a request before its body is read. Then feed chunks with ``update`` and call
    ``verify(now)`` — it returns the index of the secret that matched (several are active while a
    secret rotates) or raises ``SignatureError``.
    """

    scheme = "hmac-sha256"

    def __init__(self, headers: Mapping[str, str], secrets: Sequence[str], *,
                 tolerance: int = DEFAULT_TOLERANCE_S):
        _require(secrets)
        super().__init__(headers, [hmac_key(s) for s in secrets], tolerance=tolerance,
                         required=(TIMESTAMP_HEADER, SIGNATURE_HEADER, CONTENT_SHA256_HEADER),
                         timestamp_header=TIMESTAMP_HEADER,
                         signed_prefix=lambda _headers, ts: f"{ts}.".encode())
        self._signature = self._headers.get(SIGNATURE_HEADER)
        self._claimed_sha256 = self._headers.get(CONTENT_SHA256_HEADER)

    def verify(self, now: float) -> int:
        """Index of the matching secret; raises ``SignatureError`` naming the failed check.

        The signature is checked before the content hash: ``X-Content-SHA256`` is not covered by
        the HMAC, so its comparison only means something for an authenticated request.
        """
        self.check_headers(now)
        assert self._macs is not None and self._signature is not None and self._claimed_sha256 is not None
        matched = _match_hex(self._signature, self._macs.digests())
        if matched is None:
            raise SignatureError("bad_signature", "X-Signature does not match the body under any active secret")
        claimed = self._claimed_sha256.strip()
        actual = self.content_sha256
        if not (_HEX_SHA256.fullmatch(claimed)
                and hmac.compare_digest(claimed.lower().encode("ascii"), actual.encode("ascii"))):
            raise SignatureError("content_hash_mismatch", "X-Content-SHA256 does not match the body")
        return matched


def _match_hex(provided: str, digests: Sequence[bytes]) -> int | None:
    """Index of the digest whose lowercase hex equals ``provided``; every candidate is compared."""
    given = provided.strip().lower().encode("utf-8")
    matched: int | None = None
    for i, digest in enumerate(digests):
        # No early exit: the time taken must not reveal which secret (if any) matched.
        if hmac.compare_digest(given, digest.hex().encode("ascii")) and matched is None:
            matched = i
    return matched


def verify_request(body: bytes, headers: Mapping[str, str], secrets: Sequence[str], now: float,
                   tolerance: int = DEFAULT_TOLERANCE_S) -> int:
    """One-shot verification of our scheme; returns the matching secret's index."""
    verifier = SignatureVerifier(headers, secrets, tolerance=tolerance)
    verifier.update(body)
    return verifier.verify(now)


# --------------------------------------------------------------------------- Standard Webhooks


def sign_standard_webhook(body: bytes, secret: str, msg_id: str, timestamp: int) -> dict[str, str]:
    """Standard Webhooks headers for ``body`` (one ``v1`` signature)."""
    key = decode_standard_webhook_secret(secret)
    mac = hmac.new(key, f"{msg_id}.{int(timestamp)}.".encode(), hashlib.sha256)
    mac.update(body)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(timestamp)),
        "webhook-signature": "v1," + base64.b64encode(mac.digest()).decode("ascii"),
    }


class StandardWebhookVerifier(_SignedBody):
    """Streaming verifier for Standard Webhooks headers; same interface as ``SignatureVerifier``."""

    scheme = "standard-webhooks"

    def __init__(self, headers: Mapping[str, str], secrets: Sequence[str], *,
                 tolerance: int = DEFAULT_TOLERANCE_S):
        _require(secrets)
        super().__init__(headers, [decode_standard_webhook_secret(s) for s in secrets], tolerance=tolerance,
                         required=(WEBHOOK_ID_HEADER, WEBHOOK_TIMESTAMP_HEADER, WEBHOOK_SIGNATURE_HEADER),
                         timestamp_header=WEBHOOK_TIMESTAMP_HEADER,
                         signed_prefix=lambda headers, ts: f"{headers[WEBHOOK_ID_HEADER]}.{ts}.".encode())
        self._signatures = self._headers.get(WEBHOOK_SIGNATURE_HEADER)

    def verify(self, now: float) -> int:
        """Index of the secret that produced one of the ``v1`` entries; raises ``SignatureError``."""
        self.check_headers(now)
        assert self._macs is not None and self._signatures is not None
        expected = [base64.b64encode(d) for d in self._macs.digests()]
        matched: int | None = None
        for entry in v1_signatures(self._signatures):
            for i, candidate in enumerate(expected):
                # Compare the base64 text, not decoded bytes: decoding ignores the last character's
                # spare bits, so a changed final character could otherwise still "match".
                if hmac.compare_digest(entry, candidate) and matched is None:
                    matched = i
        if matched is None:
            raise SignatureError("bad_signature", "no v1 entry of webhook-signature matches under any active secret")
        return matched


def v1_signatures(header: str) -> list[bytes]:
    """The ``v1`` entries of a ``webhook-signature`` header, as bytes; other versions are ignored."""
    entries = []
    for item in header.split():
        version, _, signature = item.partition(",")
        if version == "v1":
            entries.append(signature.encode("utf-8"))
    return entries


def verify_standard_webhook(body: bytes, headers: Mapping[str, str], secrets: Sequence[str], now: float,
                            tolerance: int = DEFAULT_TOLERANCE_S) -> int:
    """One-shot Standard Webhooks verification; returns the matching secret's index."""
    verifier = StandardWebhookVerifier(headers, secrets, tolerance=tolerance)
    verifier.update(body)
    return verifier.verify(now)


# --------------------------------------------------------------------------- scheme choice


def uses_standard_webhooks(headers: Mapping[str, str]) -> bool:
    """True when the request carries Standard Webhooks headers rather than ours."""
    h = _lower_keys(headers)
    return any(name in h for name in (WEBHOOK_ID_HEADER, WEBHOOK_TIMESTAMP_HEADER, WEBHOOK_SIGNATURE_HEADER))


def verifier_for(headers: Mapping[str, str], secrets: Sequence[str], *,
                 tolerance: int = DEFAULT_TOLERANCE_S) -> BodyVerifier:
    """The verifier matching the headers' scheme.

    Standard Webhooks keys are base64, so only the ``whsec_`` secrets take part in that scheme.
    With no secret at all, ``SecretError`` says so (the server's configuration); with secrets but
    none for the request's scheme, ``SignatureError`` (the client used a scheme we do not accept).
    """
    if uses_standard_webhooks(headers):
        webhook_secrets = [s for s in secrets if is_standard_webhook_secret(s)]
        if secrets and not webhook_secrets:
            raise SignatureError("scheme_not_accepted", "Standard Webhooks signatures are not configured here")
        return StandardWebhookVerifier(headers, webhook_secrets, tolerance=tolerance)
    return SignatureVerifier(headers, secrets, tolerance=tolerance)
