"""Running the gateway: blocking ``serve`` for ``equity gateway``, ``running_gateway`` for tests."""

from __future__ import annotations

import uvicorn

from ..serving import running_in_thread
from .app import create_app
from .settings import GatewaySettings

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080


def serve(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, settings: GatewaySettings | None = None) -> None:
    """Serve the gateway until interrupted (Ctrl+C / SIGTERM), on loopback unless told otherwise.

    Proxy headers are off: the client IP (used for rate limiting) is the TCP peer. Behind a
    reverse proxy, list its address in ``EQUITY_GATEWAY_TRUSTED_PROXIES``; only then is
    X-Forwarded-For read, and only the hop that proxy appended.
    """
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info", proxy_headers=False)


def running_gateway(settings: GatewaySettings | None = None, host: str = DEFAULT_HOST):
    """Run the gateway on an ephemeral port in a background thread (context manager yielding its URL)."""
    return running_in_thread(create_app(settings), name="gateway", host=host)
