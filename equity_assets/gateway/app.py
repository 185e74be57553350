"""The gateway's HTTP application: signed uploads and the health check (docs/architecture.md).

``POST /v1/uploads`` streams the body to a temp file while hashing and HMACing it (never holding it
in memory), enforces the size limit as bytes arrive, verifies the signature (ours or Standard
Webhooks), stores the file content-addressed, then — in one transaction — takes the replay guard,
inserts the ``uploads`` row and appends ``upload_received``. Every refusal answers
``{"error", "detail"}`` and appends a rejection event. Logs carry upload id, size, IP and outcome;
never bodies, secrets or file names.
"""

from __future__ import annotations

import ipaddress
import logging
import random
import re
from collections.abc import AsyncIterator
from contextlib import AbstractContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import psycopg
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from equity_assets.db.resources import PostgresResource
from equity_assets.security.signing import BodyVerifier, SecretError, SignatureError, upload_secrets, verifier_for

from .async_db import AsyncPool
from .errors import Rejection, client_ip, handle_database_error, handle_rejection
from .ratelimit import SharedRateLimiter, count_request, prune_rate_limit_windows
from .records import NewUpload, UploadOutcome, record_upload
from .settings import GatewaySettings
from .storage import StagedFile, remove_stale_temp_files
from .consent_page import router as consent_router
from .portal import install_portal
from .webhooks import router as webhooks_router, webhook_limiter

log = logging.getLogger("equity_assets.gateway")

DEFAULT_SOURCE = "csv"
SOURCE_HEADER = "x-upload-source"
FILENAME_HEADER = "x-filename"
_SOURCE = re.compile(r"[a-z][a-z0-9_-]{0,31}")
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
_MAX_FILENAME = 255
# About one request in a thousand also deletes rate-limit rows of long-gone clients.
PRUNE_PROBABILITY = 0.001


@dataclass
class GatewayState:
    """What request handlers share, kept on ``app.state.gateway``."""

    settings: GatewaySettings
    upload_dir: Path
    postgres: PostgresResource
    webhook_limiter: SharedRateLimiter
    async_pool: AsyncPool  # the webhooks' hot path (the same database and role)

    def connection(self) -> AbstractContextManager[psycopg.Connection]:
        """A pooled connection in a transaction (as ``service_role``)."""
        return self.postgres.connection()


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    """Build the gateway application; ``settings`` defaults to ``GatewaySettings()``."""
    settings = settings or GatewaySettings()
    owns_pool = settings.postgres is None
    postgres = settings.postgres or PostgresResource(application_name="equity_gateway", max_size=settings.pool_size)
    state = GatewayState(
        settings=settings,
        upload_dir=settings.resolved_upload_dir(),
        postgres=postgres,
        webhook_limiter=webhook_limiter(settings),
        async_pool=AsyncPool(postgres, max_size=settings.pool_size),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        removed = await run_in_threadpool(remove_stale_temp_files, state.upload_dir)
        if removed:
            log.info("removed %d temp file(s) left by interrupted uploads", removed)
        await state.async_pool.open()
        yield
        await state.async_pool.close()
        if owns_pool:
            state.postgres.close()

    app = FastAPI(title="Equity Connect gateway", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.gateway = state
    app.add_exception_handler(Rejection, handle_rejection)
    app.add_exception_handler(psycopg.OperationalError, handle_database_error)
    app.add_api_route("/healthz", healthz, methods=["GET"])
    app.add_api_route("/v1/uploads", create_upload, methods=["POST"], status_code=202,
                      dependencies=[Depends(enforce_rate_limit)])
    app.include_router(webhooks_router)
    app.include_router(consent_router, dependencies=[Depends(enforce_rate_limit)])
    install_portal(app, state, Depends(enforce_rate_limit))
    return app


def gateway_state(request: Request) -> GatewayState:
    return request.app.state.gateway


# --------------------------------------------------------------------------- health


async def healthz(request: Request) -> JSONResponse:
    """200 when the database answers, 503 otherwise."""
    state = gateway_state(request)
    try:
        await run_in_threadpool(_ping_database, state)
    except psycopg.Error as exc:
        log.warning("health check: database unreachable (%s)", type(exc).__name__)
        return JSONResponse({"status": "degraded", "database": "unreachable"}, status_code=503)
    return JSONResponse({"status": "ok", "database": "ok"})


def _ping_database(state: GatewayState) -> None:
    # A direct connection with a short timeout: the pool would wait up to 30 s for a dead server.
    with psycopg.connect(state.postgres.resolved_dsn(),
                         connect_timeout=state.settings.health_connect_timeout_s) as conn:
        conn.execute("SELECT 1")


# --------------------------------------------------------------------------- rate limit


def enforce_rate_limit(request: Request) -> None:
    """Count the request against its client IP; 429 with Retry-After once over the limit.

    Only the first refusal of a window is recorded as an event, so a client hammering the gateway
    cannot turn each blocked request into a database write.
    """
    state = gateway_state(request)
    settings = state.settings
    ip = client_ip(request)
    with state.connection() as conn:
        decision = count_request(conn, ip or "unknown", limit=settings.rate_limit_per_window,
                                 window=settings.rate_limit_window)
        if random.random() < PRUNE_PROBABILITY:
            # Housekeeping rides along with traffic so no extra process is needed for it.
            prune_rate_limit_windows(conn)
    if not decision.allowed:
        raise Rejection(
            429, "rate_limited",
            f"more than {settings.rate_limit_per_window} requests in "
            f"{int(settings.rate_limit_window.total_seconds())} s; retry after {decision.retry_after_s} s",
            headers={"Retry-After": str(decision.retry_after_s)},
            event=decision.first_rejection,
            details={"hits": decision.hits},
        )


# --------------------------------------------------------------------------- uploads


async def create_upload(request: Request, source: str | None = None) -> JSONResponse:
    """Receive one signed upload: 202 with its id, or an error naming the check that failed."""
    state = gateway_state(request)
    settings = state.settings
    arrived_at = settings.clock()  # the signature window is judged at arrival, not after a slow body
    source_name = upload_source(source or request.headers.get(SOURCE_HEADER))
    filename = clean_filename(request.headers.get(FILENAME_HEADER))
    reject_declared_oversize(request, settings.max_body_bytes)
    verifier = build_verifier(request, settings)
    try:
        verifier.check_headers(arrived_at)  # refuse before reading a body we would throw away
    except SignatureError as exc:
        raise signature_rejection(exc, verifier) from None

    staged = await receive_body(request, verifier, state.upload_dir, settings.max_body_bytes)
    try:
        try:
            secret_index = verifier.verify(arrived_at)
        except SignatureError as exc:
            raise signature_rejection(exc, verifier) from None
        if verifier.byte_count == 0:
            raise Rejection(400, "empty_body", "the upload has no content")
        sha = verifier.content_sha256
        stored_at = await run_in_threadpool(staged.promote, state.upload_dir, sha)
        upload = NewUpload(
            content_sha256=sha, source=source_name, filename=filename, storage_path=str(stored_at),
            byte_size=verifier.byte_count, client_ip=inet_or_none(client_ip(request)),
            scheme=verifier.scheme, secret_index=secret_index,
        )
        outcome = await run_in_threadpool(_store_upload_row, state, upload)
    finally:
        # Synchronous on purpose: an await here could be skipped if the request is cancelled.
        staged.discard()

    if outcome.is_replay:
        raise Rejection(
            409, "replay",
            f"the same content was uploaded at {outcome.replay_first_seen_at}; "
            f"uploads are unique for {settings.replay_window.days} days",
            details={"earlier_upload_id": outcome.replay_of, "content_sha256": sha},
            extra={"upload_id": outcome.replay_of, "content_sha256": sha},
        )
    log.info("upload accepted: id=%s bytes=%d ip=%s scheme=%s", outcome.upload_id, upload.byte_size,
             upload.client_ip, upload.scheme)
    return JSONResponse({"upload_id": outcome.upload_id, "content_sha256": sha, "bytes": upload.byte_size},
                        status_code=202)


def upload_source(raw: str | None) -> str:
    """The upload's source label (``csv`` by default); a short lowercase slug, else 400."""
    value = (raw or DEFAULT_SOURCE).strip().lower()
    if not _SOURCE.fullmatch(value):
        raise Rejection(400, "invalid_source", "source must be 1-32 characters of a-z, 0-9, '_' or '-'")
    return value


def clean_filename(raw: str | None) -> str | None:
    """The client's file name (percent-encoded UTF-8 in the header), reduced to a safe base name."""
    if not raw:
        return None
    name = unquote(raw).replace("\\", "/").rsplit("/", 1)[-1]
    name = _CONTROL_CHARS.sub("", name).strip()[:_MAX_FILENAME]
    return name or None


def inet_or_none(ip: str | None) -> str | None:
    """The IP when it parses as one (``uploads.client_ip`` is ``inet``)."""
    if not ip:
        return None
    try:
        return str(ipaddress.ip_address(ip))
    except ValueError:
        return None


def reject_declared_oversize(request: Request, max_bytes: int) -> None:
    """413 from Content-Length alone, before a byte of the body is read."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > max_bytes:
        raise Rejection(413, "payload_too_large", f"the body may not exceed {max_bytes} bytes",
                        details={"declared_bytes": int(declared), "max_bytes": max_bytes})


def build_verifier(request: Request, settings: GatewaySettings) -> BodyVerifier:
    """A verifier for the request's signing scheme, keyed with the secrets in the environment now."""
    try:
        return verifier_for(request.headers, upload_secrets(), tolerance=settings.signature_tolerance_s)
    except SecretError as exc:
        # The server's configuration, not the client's fault; str(exc) never holds a secret.
        log.error("upload signing is not configured: %s", exc)
        raise Rejection(503, "signing_not_configured", "the gateway has no usable upload secret") from None
    except SignatureError as exc:  # a scheme this gateway has no secret for: the client's problem
        raise Rejection(401, exc.reason, exc.detail) from None


def signature_rejection(exc: SignatureError, verifier: BodyVerifier) -> Rejection:
    """401 naming the failed check."""
    return Rejection(401, exc.reason, exc.detail,
                     details={"scheme": verifier.scheme, "bytes_received": verifier.byte_count})


async def receive_body(request: Request, verifier: BodyVerifier, upload_dir: Path, max_bytes: int) -> StagedFile:
    """Stream the body into a temp file, feeding the verifier; 413 as soon as it grows too large."""
    staged = await run_in_threadpool(StagedFile.create, upload_dir)
    try:
        async for chunk in request.stream():
            if not chunk:
                continue
            if verifier.byte_count + len(chunk) > max_bytes:
                raise Rejection(413, "payload_too_large", f"the body may not exceed {max_bytes} bytes",
                                details={"bytes_received": verifier.byte_count + len(chunk),
                                         "max_bytes": max_bytes})
            # Hashing and disk writes run off the event loop (hashlib releases the GIL).
            await run_in_threadpool(_absorb, verifier, staged, chunk)
        await run_in_threadpool(staged.seal)
    except ClientDisconnect:
        staged.discard()
        log.warning("client disconnected mid-upload after %d bytes", verifier.byte_count)
        raise Rejection(400, "client_disconnected", "the connection closed before the body was complete",
                        event=False) from None
    except BaseException:
        staged.discard()  # not awaited: must also run when the request task is cancelled
        raise
    return staged


def _absorb(verifier: BodyVerifier, staged: StagedFile, chunk: bytes) -> None:
    verifier.update(chunk)
    staged.write(chunk)


def _store_upload_row(state: GatewayState, upload: NewUpload) -> UploadOutcome:
    with state.connection() as conn:
        return record_upload(conn, upload, state.settings.replay_window)
