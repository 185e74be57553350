"""The broker portal (pages), the broker JSON API and broker-signed event reports."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.params import Depends

from .api import create_api
from .pages import EXCEPTION_HANDLERS
from .pages import router as pages_router
from .reports import router as reports_router


def install_portal(app: FastAPI, state: Any, rate_limit: Depends) -> None:
    """Add the portal, ``/api/v1`` and ``/v1/brokers/events`` to the gateway application; the portal
    and the reports count against the per-IP rate limit (the API's bearer tokens are checked first)."""
    app.include_router(pages_router, dependencies=[rate_limit])
    app.include_router(reports_router, dependencies=[rate_limit])
    for exc, handler in EXCEPTION_HANDLERS.items():
        app.add_exception_handler(exc, handler)
    app.mount("/api/v1", create_api(state))
