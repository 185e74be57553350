"""The broker JSON API for other front ends, Supabase-style: ``Authorization: Bearer <JWT>``.

Mounted at ``/api/v1`` as its own application so its OpenAPI document
(``/api/v1/openapi.json``) describes the broker API only. A lead that is not the caller's answers
404 exactly like a lead that does not exist: the database (RLS) never returned it.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from . import queries
from .access import as_broker
from .identity import NotConfigured, token_broker

bearer = HTTPBearer(auto_error=False, description="HS256 JWT with claims sub (broker id), role=authenticated, "
                                                  "aud=authenticated, exp")


def create_api(state: Any) -> FastAPI:
    """The API application sharing the gateway's state (its connection pool)."""
    api = FastAPI(title="Equity Connect broker API", version="1", docs_url=None, redoc_url=None,
                  openapi_url="/openapi.json",
                  description="Every answer holds only the calling broker's rows; the database enforces it.")
    api.state.gateway = state
    api.add_api_route("/leads", list_leads, methods=["GET"], summary="The caller's leads (filters, pagination)")
    api.add_api_route("/leads/{lead_id}", get_lead, methods=["GET"], summary="One lead with its calls and events",
                      responses={404: {"description": "no such lead among the caller's"}})
    api.add_api_route("/calls", list_calls, methods=["GET"], summary="Calls to the caller's leads")
    api.add_api_route("/billing/events", list_billing_events, methods=["GET"], summary="Billable events")
    api.add_api_route("/invoices", list_invoices, methods=["GET"], summary="Monthly invoices (latest revision)")
    return api


def broker_of(request: Request,
              credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> uuid.UUID:
    """The broker the bearer token names; 401 for anything less than a valid token."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(401, "a bearer token is required", headers={"WWW-Authenticate": "Bearer"})
    try:
        broker = token_broker(credentials.credentials)
    except NotConfigured:
        raise HTTPException(503, "the API is not configured") from None
    if broker is None:
        raise HTTPException(401, "invalid or expired token", headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
    return broker


Broker = Annotated[uuid.UUID, Depends(broker_of)]


async def _read(request: Request, broker: uuid.UUID, fn, *args) -> Any:
    def run():
        with as_broker(request.app.state.gateway.postgres, broker) as conn:
            return fn(conn, *args)

    return await run_in_threadpool(run)


async def list_leads(request: Request, broker: Broker,
                     status: Annotated[str | None, Query(pattern="^(" + "|".join(queries.LEAD_STATUSES) + ")$")] = None,
                     state: Annotated[str | None, Query(pattern="^[A-Z]{2}$")] = None,
                     min_score: Annotated[float | None, Query(ge=0, le=100)] = None,
                     max_score: Annotated[float | None, Query(ge=0, le=100)] = None,
                     q: Annotated[str | None, Query(max_length=100)] = None,
                     limit: Annotated[int, Query(ge=1, le=200)] = 50,
                     offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0) -> JSONResponse:
    f = queries.LeadFilter(status=status, state=state, min_score=min_score, max_score=max_score, q=q,
                           limit=limit, offset=offset)
    total, rows = await _read(request, broker, queries.list_leads, f)
    return JSONResponse(jsonable_encoder({"total": total, "limit": limit, "offset": offset, "items": rows}))


async def get_lead(request: Request, broker: Broker, lead_id: uuid.UUID) -> JSONResponse:
    def detail(conn, lead_id):
        found = queries.lead(conn, lead_id)
        if found is None:
            return None
        return {**found, "calls": queries.calls(conn, lead_id), "billing_events": queries.billing_events(conn, lead_id),
                "consent_audit": queries.consent_trail(conn, lead_id)}

    found = await _read(request, broker, detail, lead_id)
    if found is None:
        raise HTTPException(404, "not found")
    return JSONResponse(jsonable_encoder(found))


async def list_calls(request: Request, broker: Broker, limit: Annotated[int, Query(ge=1, le=200)] = 50,
                     offset: Annotated[int, Query(ge=0)] = 0) -> JSONResponse:
    rows = await _read(request, broker, lambda c: queries.calls(c, None, limit, offset))
    return JSONResponse(jsonable_encoder({"limit": limit, "offset": offset, "items": rows}))


async def list_billing_events(request: Request, broker: Broker, limit: Annotated[int, Query(ge=1, le=500)] = 100,
                              offset: Annotated[int, Query(ge=0)] = 0) -> JSONResponse:
    rows = await _read(request, broker, lambda c: queries.billing_events(c, None, limit, offset))
    return JSONResponse(jsonable_encoder({"limit": limit, "offset": offset, "items": rows}))


async def list_invoices(request: Request, broker: Broker) -> JSONResponse:
    rows = await _read(request, broker, queries.invoices)
    return JSONResponse(jsonable_encoder({"items": rows}))
