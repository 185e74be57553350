"""The gateway's error answers: ``{"error": "<code>", "detail": "..."}`` plus a rejection event."""

from __future__ import annotations

import ipaddress
import logging
from typing import Any

import psycopg
from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from equity_assets.observe.events import Event

from .records import record_rejection

log = logging.getLogger("equity_assets.gateway")


class Rejection(Exception):
    """A request the gateway refuses.

    ``event`` says whether to append a rejection row to ``pipeline_events`` (with ``details``,
    which must never hold a body or a secret); ``extra`` adds fields to the JSON answer.
    """

    def __init__(self, status: int, code: str, detail: str, *, headers: dict[str, str] | None = None,
                 event: bool = True, details: dict[str, Any] | None = None,
                 extra: dict[str, Any] | None = None):
        super().__init__(f"{status} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = headers or {}
        self.event = event
        self.details = details or {}
        self.extra = extra or {}


def client_ip(request: Request) -> str | None:
    """The client's address: the TCP peer, unless the peer is a configured proxy.

    Behind trusted proxies, the client is the right-most X-Forwarded-For hop that is not itself a
    trusted proxy (every earlier hop was written by someone we cannot vouch for). uvicorn's own
    proxy-header handling is off: it trusts loopback, where every direct client comes from.
    """
    peer = request.client.host if request.client else None
    trusted = [ipaddress.ip_network(p, strict=False) for p in request.app.state.gateway.settings.trusted_proxies]
    if peer is None or not _within(peer, trusted):
        return peer
    hops = [h.strip() for h in ",".join(request.headers.getlist("x-forwarded-for")).split(",") if h.strip()]
    for hop in reversed(hops):
        if not _within(hop, trusted):
            return hop if _is_ip(hop) else peer
    return peer


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _within(address: str, networks: list) -> bool:
    return _is_ip(address) and any(ipaddress.ip_address(address) in n for n in networks)


def rejection_event_type(request: Request) -> Event:
    """Uploads have their own event type so the funnel and the alert checks can count them."""
    return Event.UPLOAD_REJECTED if request.url.path.startswith("/v1/uploads") else Event.REQUEST_REJECTED


def error_response(status: int, code: str, detail: str, *, headers: dict[str, str] | None = None,
                   extra: dict[str, Any] | None = None) -> JSONResponse:
    """The JSON body every gateway error shares."""
    return JSONResponse({"error": code, "detail": detail, **(extra or {})}, status_code=status, headers=headers)


async def handle_rejection(request: Request, exc: Exception) -> JSONResponse:
    """Answer a ``Rejection`` and, when asked, record it; a failed write must not change the answer."""
    assert isinstance(exc, Rejection)
    ip = client_ip(request)
    log.warning("rejected %s %s: status=%s reason=%s ip=%s", request.method, request.url.path,
                exc.status, exc.code, ip)
    if exc.event:
        try:
            await run_in_threadpool(_write_rejection, request, exc, ip)
        except psycopg.Error as db_error:
            log.error("could not record rejection (%s): %s", exc.code, type(db_error).__name__)
    return error_response(exc.status, exc.code, exc.detail, headers=exc.headers, extra=exc.extra)


def _write_rejection(request: Request, exc: Rejection, ip: str | None) -> None:
    with request.app.state.gateway.connection() as conn:
        record_rejection(conn, rejection_event_type(request), exc.code, ip,
                         {"status": exc.status, "detail": exc.detail, **exc.details})


async def handle_database_error(request: Request, exc: Exception) -> JSONResponse:
    """The database is down or saturated: tell the client to retry rather than failing opaquely."""
    log.error("database unavailable during %s %s: %s", request.method, request.url.path, type(exc).__name__)
    return error_response(503, "database_unavailable", "the database is unreachable; retry later",
                          headers={"Retry-After": "5"})
