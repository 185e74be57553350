"""``POST /v1/brokers/events``: a broker's own system reports an application or a funded loan.

Signed with Standard Webhooks headers under the broker's notification secret (the one their
Settings page shows), over the raw body; the body names the broker. Once verified, the event is
written as that broker (RLS), so a lead of another broker answers 404 like an unknown one. A
repeat of the same lead and type is answered 200 with ``"duplicate": true`` and changes nothing.
"""

from __future__ import annotations

import json
import uuid

import psycopg
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from equity_assets.security.notify import broker_signing_secrets
from equity_assets.security.signing import SecretError, SignatureError, verify_standard_webhook

from . import queries
from .access import as_broker
from .bodies import read_limited

MAX_BODY = 16 * 1024
router = APIRouter()


def _error(status: int, code: str, detail: str) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail}, status_code=status)


def _secrets(request: Request, broker: uuid.UUID) -> list[str]:
    with request.app.state.gateway.connection() as conn:
        return broker_signing_secrets(conn, broker)


@router.post("/v1/brokers/events")
async def broker_event(request: Request) -> JSONResponse:
    body = await read_limited(request, MAX_BODY)
    if body is None:
        return _error(413, "payload_too_large", f"the body may not exceed {MAX_BODY} bytes")
    try:
        doc = json.loads(body)
        broker, lead = uuid.UUID(str(doc["broker_id"])), uuid.UUID(str(doc["lead_id"]))
        event_type, external_id = doc["event_type"], doc.get("external_id")
    except (ValueError, KeyError, TypeError):
        return _error(400, "invalid_body", "expected JSON with broker_id, lead_id and event_type")
    if event_type not in queries.REPORTABLE_EVENTS:
        return _error(400, "invalid_event_type", f"event_type must be one of {', '.join(queries.REPORTABLE_EVENTS)}")
    if external_id is not None and (not isinstance(external_id, str) or len(external_id) > 200):
        return _error(400, "invalid_external_id", "external_id must be a string of at most 200 characters")
    secrets = await run_in_threadpool(_secrets, request, broker)
    try:
        if not secrets:
            raise SignatureError("bad_signature", "no v1 entry of webhook-signature matches under any active secret")
        verify_standard_webhook(body, request.headers, secrets, now=request.app.state.gateway.settings.clock())
    except (SignatureError, SecretError) as exc:
        # An unknown broker and a wrong signature look the same from outside.
        return _error(401, getattr(exc, "reason", "bad_signature"), "the request signature does not verify")

    def write() -> bool:
        with as_broker(request.app.state.gateway.postgres, broker) as conn:
            return queries.report_event(conn, lead, broker, event_type, "api", external_id)

    try:
        created = await run_in_threadpool(write)
    except (psycopg.errors.InsufficientPrivilege, psycopg.errors.ForeignKeyViolation):
        return _error(404, "not_found", "no such lead")
    return JSONResponse({"lead_id": str(lead), "event_type": event_type, "duplicate": not created},
                        status_code=201 if created else 200)
