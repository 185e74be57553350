"""Running the gateway: blocking ``serve`` for ``equity gateway``, ``running_gateway`` for tests."""

from __future__ import annotations

import os

import uvicorn

from ..serving import running_in_thread
from .app import create_app
from .settings import GatewaySettings

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
WORKERS_ENV = "EQUITY_GATEWAY_WORKERS"
#: The application factory worker processes import (each builds its app from the environment).
APP_FACTORY = "equity_assets.gateway.app:create_app"


def default_workers() -> int:
    """``$EQUITY_GATEWAY_WORKERS``, else one process per core (at most 4)."""
    raw = os.environ.get(WORKERS_ENV)
    return max(1, int(raw)) if raw else max(1, min(4, os.cpu_count() or 1))


def serve(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, settings: GatewaySettings | None = None, *,
          workers: int = 1, app_factory: str = APP_FACTORY, log_level: str = "info",
          keep_alive_s: int = 5) -> None:
    """Serve the gateway until interrupted (Ctrl+C / SIGTERM), on loopback unless told otherwise.

    With ``workers`` > 1, uvicorn forks that many processes sharing the listening socket; each
    imports ``app_factory`` and has its own connection pool, and they meet in the database (the
    webhook inbox, the replay guard and the shared rate-limit rows), so nothing depends on which
    process a request reaches. uvloop and httptools are used when installed (they are a dependency).

    Proxy headers are off: the client IP (used for rate limiting) is the TCP peer. Behind a
    reverse proxy, list its address in ``EQUITY_GATEWAY_TRUSTED_PROXIES``; only then is
    X-Forwarded-For read, and only the hop that proxy appended.
    """
    options = dict(host=host, port=port, log_level=log_level, proxy_headers=False, access_log=False,
                   timeout_keep_alive=keep_alive_s)
    if settings is None:
        uvicorn.run(app_factory, factory=True, workers=workers, **options)
    elif workers == 1:
        uvicorn.run(create_app(settings), **options)
    else:
        raise ValueError("worker processes build their settings from the environment; pass settings=None")


def running_gateway(settings: GatewaySettings | None = None, host: str = DEFAULT_HOST):
    """Run the gateway on an ephemeral port in a background thread (context manager yielding its URL)."""
    return running_in_thread(create_app(settings), name="gateway", host=host)
