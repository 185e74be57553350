"""The broker portal (pages), the broker JSON API and broker-signed event reports."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from .api import create_api
from .pages import EXCEPTION_HANDLERS
from .pages import router as pages_router
from .reports import router as reports_router


def install_portal(app: FastAPI, state: Any) -> None:
    """Add the portal, ``/api/v1`` and ``/v1/brokers/events`` to the gateway application."""
    app.include_router(pages_router)
    app.include_router(reports_router)
    for exc, handler in EXCEPTION_HANDLERS.items():
        app.add_exception_handler(exc, handler)
    app.mount("/api/v1", create_api(state))
