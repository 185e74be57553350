"""The sandbox ASGI app: Melissa, BatchData and Instantly behind one fault-injecting front door."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.responses import Response

from equity_assets.sandbox import admin, batchdata, instantly, instantly_webhooks, melissa, vapi
from equity_assets.sandbox.config import SandboxConfig
from equity_assets.sandbox.faults import inject_fault
from equity_assets.sandbox.state import SandboxState

#: The vendor paths the sandbox serves (all POST), e.g. for per-path fault overrides.
VENDOR_PATHS = {"melissa": melissa.PATH, "batchdata": batchdata.PATH, "instantly": instantly.PATH,
                "instantly_webhooks": instantly_webhooks.PATH, "vapi": vapi.PATH}


def create_app(config: SandboxConfig | None = None) -> FastAPI:
    """Build a sandbox app with its own state (two apps never share anything)."""
    app = FastAPI(
        title="Equity sandbox (Melissa, BatchData, Instantly, VAPI)", docs_url=None, redoc_url=None, openapi_url=None
    )
    app.state.sandbox = SandboxState(config or SandboxConfig())
    app.include_router(melissa.router)
    app.include_router(batchdata.router)
    app.include_router(instantly.router)
    app.include_router(instantly_webhooks.router)
    app.include_router(vapi.router)
    app.include_router(admin.router)
    app.middleware("http")(_vendor_front_door)
    return app


async def _vendor_front_door(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    """Count every vendor request and its status, and inject the configured faults first."""
    path = request.url.path
    if path.startswith(admin.PREFIX):
        return await call_next(request)
    state: SandboxState = request.app.state.sandbox
    stats = state.stats  # held: a reset during this request must not corrupt the new counters
    endpoint = f"{request.method} {path}"
    stats.request_started(endpoint)
    status: int | None = None
    try:
        response = await inject_fault(state, path)
        if response is None:
            response = await call_next(request)
        status = response.status_code
        return response
    finally:
        stats.request_finished(endpoint, status)
