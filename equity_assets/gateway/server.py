"""Running the gateway: blocking ``serve`` for ``equity gateway``, ``running_gateway`` for tests."""

from __future__ import annotations

import uvicorn

from ..serving import running_in_thread
from .app import create_app
from .settings import GatewaySettings

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080


def serve(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, settings: GatewaySettings | None = None) -> None:
    """Serve the gateway until interrupted (Ctrl+C / SIGTERM).

    Behind a reverse proxy on another host, set ``FORWARDED_ALLOW_IPS`` to the proxy's address so
    uvicorn takes the client IP (used for rate limiting) from X-Forwarded-For; by default only a
    proxy on loopback is trusted, so a client cannot pick its own IP.
    """
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info")


def running_gateway(settings: GatewaySettings | None = None, host: str = DEFAULT_HOST):
    """Run the gateway on an ephemeral port in a background thread (context manager yielding its URL)."""
    return running_in_thread(create_app(settings), name="gateway", host=host)
