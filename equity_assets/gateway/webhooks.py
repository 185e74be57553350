"""Provider webhooks: ``POST /v1/webhooks/instantly`` and ``POST /v1/webhooks/vapi``.

A webhook is checked (Instantly: the shared-secret header we registered; VAPI: bearer /
``X-Vapi-Secret``, or the HMAC plan), read up to a size limit, and committed to
``webhook_events`` **before** it is answered; nothing else happens inline — Dagster sensors pick
the rows up. A retried delivery finds its row by the idempotency key and is answered 200 again
without a second row. Webhooks count against a per-IP limit of their own, shared by the
gateway's processes but settled with the database in batches (one INSERT per webhook is the hot
path): a provider sends bursts from a few addresses, which must neither starve a broker's uploads
nor be refused at the upload rate. VAPI end-of-call reports are exempt: there is one per call we
placed ourselves, and refusing one would lose a call's outcome when a burst of calls ends at once.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass

import psycopg
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.requests import ClientDisconnect

from equity_assets.vendors import webhooks as wire
from equity_assets.security import webhook_auth
from equity_assets.security.signing import SecretError, SignatureError

from .errors import Rejection, client_ip
from .ratelimit import RateDecision, SharedRateLimiter

log = logging.getLogger("equity_assets.gateway.webhooks")

KIB = 1024
#: VAPI message types never refused by the rate limit (see the module docstring).
UNLIMITED_VAPI_TYPES = frozenset({"end-of-call-report"})

_STORE_SQL = """
INSERT INTO webhook_events (provider, event_key, event_type, payload)
VALUES (%s, %s, %s, %s::jsonb)
ON CONFLICT (provider, event_key) DO NOTHING
RETURNING id
"""


@dataclass(frozen=True)
class WebhookSettings:
    """Tunables of the webhook endpoints; the secrets themselves come from the environment.

    ``after_store`` runs after the row is committed and before the answer is sent (tests use it to
    kill a request at the worst moment).
    """

    max_body_bytes: int = 256 * KIB
    rate_limit_per_window: int = 6000  # per provider IP in the gateway's rate-limit window
    instantly_secret_header: str = webhook_auth.INSTANTLY_SECRET_HEADER
    vapi_auth: str | None = None  # None: $EQUITY_VAPI_WEBHOOK_AUTH, else "bearer"
    after_store: Callable[[int], None] | None = None

    def resolved_vapi_auth(self) -> str:
        mode = (self.vapi_auth or os.environ.get(webhook_auth.VAPI_AUTH_ENV) or "bearer").strip().lower()
        if mode not in ("bearer", "hmac"):
            raise SecretError(f"{webhook_auth.VAPI_AUTH_ENV} must be 'bearer' or 'hmac'")
        return mode


router = APIRouter()


@router.post("/v1/webhooks/instantly")
async def instantly_webhook(request: Request) -> JSONResponse:
    """Store one Instantly event; 200 with its inbox id (also for a duplicate delivery)."""
    settings = request.app.state.gateway.settings
    hooks = settings.webhooks
    secrets = _configured(webhook_auth.INSTANTLY_SECRETS_ENV, "instantly")
    await _authenticate(request, lambda: webhook_auth.check_shared_secret(
        request.headers, hooks.instantly_secret_header, secrets))
    raw = await read_limited_body(request, hooks.max_body_bytes)
    try:
        payload = wire.json_object(raw)
        event_type = wire.instantly_event_type(payload)
    except wire.WireError as exc:
        raise Rejection(400, "invalid_payload", str(exc)) from None
    return await _store(request, "instantly", wire.instantly_event_key(raw), event_type, raw)


@router.post("/v1/webhooks/vapi")
async def vapi_webhook(request: Request) -> JSONResponse:
    """Store one VAPI server message; 200 with its inbox id (also for a duplicate delivery)."""
    settings = request.app.state.gateway.settings
    hooks = settings.webhooks
    secrets = _configured(webhook_auth.VAPI_SECRETS_ENV, "vapi")
    try:
        mode = hooks.resolved_vapi_auth()
    except SecretError as exc:
        log.error("vapi webhooks are misconfigured: %s", exc)
        raise Rejection(503, "webhook_auth_not_configured", "the gateway has no usable vapi webhook auth") from None
    if mode == "bearer":
        await _authenticate(request, lambda: webhook_auth.check_bearer(request.headers, secrets))
    raw = await read_limited_body(request, hooks.max_body_bytes)
    if mode == "hmac":
        await _authenticate(request, lambda: webhook_auth.check_timestamp_hmac(
            raw, request.headers, secrets, now=settings.clock(), tolerance=settings.signature_tolerance_s))
    try:
        payload = wire.json_object(raw)
        message = wire.vapi_message(payload)
    except wire.WireError as exc:
        raise Rejection(400, "invalid_payload", str(exc)) from None
    return await _store(request, "vapi", wire.vapi_event_key(message, raw), message["type"], raw,
                        limited=message["type"] not in UNLIMITED_VAPI_TYPES)


def _configured(env: str, provider: str) -> list[str]:
    try:
        return webhook_auth.env_secrets(env)
    except SecretError as exc:
        log.error("%s webhooks are not configured: %s", provider, exc)
        raise Rejection(503, "webhook_auth_not_configured", f"the gateway has no {provider} webhook secret") from None


async def _authenticate(request: Request, check: Callable[[], int]) -> None:
    """Run ``check``; on failure count the request against the rate limit, then 429 or 401."""
    try:
        check()
    except SignatureError as exc:
        decision = await _count_only(request)
        if not decision.allowed:
            raise _rate_limited(request, decision) from None
        raise Rejection(401, exc.reason, exc.detail) from None


async def read_limited_body(request: Request, max_bytes: int) -> bytes:
    """The raw body; 413 from Content-Length or as soon as the bytes pass ``max_bytes``."""
    declared = request.headers.get("content-length")
    if declared and declared.isascii() and declared.isdigit() and int(declared) > max_bytes:
        raise Rejection(413, "payload_too_large", f"the body may not exceed {max_bytes} bytes",
                        details={"declared_bytes": int(declared), "max_bytes": max_bytes})
    parts: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_bytes:
                raise Rejection(413, "payload_too_large", f"the body may not exceed {max_bytes} bytes",
                                details={"bytes_received": size, "max_bytes": max_bytes})
            parts.append(chunk)
    except ClientDisconnect:
        raise Rejection(400, "client_disconnected", "the connection closed before the body was complete",
                        event=False) from None
    return b"".join(parts)


def webhook_limiter(settings) -> SharedRateLimiter:
    """The webhooks' limiter of one gateway process (``settings``: its ``GatewaySettings``)."""
    return SharedRateLimiter("webhooks:", limit=settings.webhooks.rate_limit_per_window,
                             window=settings.rate_limit_window)


async def _count_only(request: Request) -> RateDecision:
    state = request.app.state.gateway
    return await state.webhook_limiter.hit(client_ip(request) or "unknown", state.async_pool.connection)


def _rate_limited(request: Request, decision: RateDecision) -> Rejection:
    settings = request.app.state.gateway.settings
    return Rejection(
        429, "rate_limited",
        f"more than {settings.webhooks.rate_limit_per_window} requests in "
        f"{int(settings.rate_limit_window.total_seconds())} s; retry after {decision.retry_after_s} s",
        headers={"Retry-After": str(decision.retry_after_s)},
        event=decision.first_rejection, details={"hits": decision.hits},
    )


async def _insert(conn: psycopg.AsyncConnection, provider: str, key: str, event_type: str,
                  raw: bytes) -> tuple[int, bool]:
    """Store the event as received (autocommit: one durable transaction); (inbox id, whether it is new)."""
    row = await (await conn.execute(_STORE_SQL, (provider, key, event_type, raw.decode("utf-8")))).fetchone()
    if row is not None:
        return row[0], True
    # A duplicate: a fresh statement (and snapshot) sees the row even if its insert committed just now.
    existing = await (await conn.execute("SELECT id FROM webhook_events WHERE provider = %s AND event_key = %s",
                                         (provider, key))).fetchone()
    return existing[0], False


async def _store(request: Request, provider: str, key: str, event_type: str, raw: bytes, *,
                 limited: bool = True) -> JSONResponse:
    if limited:
        decision = await _count_only(request)
        if not decision.allowed:
            raise _rate_limited(request, decision)
    async with request.app.state.gateway.async_pool.connection() as conn:
        event_id, new = await _insert(conn, provider, key, event_type, raw)
    # Committed: from here on a crash loses only the answer, and the provider's retry is a duplicate.
    hook = request.app.state.gateway.settings.webhooks.after_store
    if hook is not None:
        hook(event_id)
    if new:
        log.info("webhook stored: provider=%s id=%s type=%s", provider, event_id, event_type)
    return JSONResponse({"status": "accepted" if new else "duplicate", "event_id": event_id})
