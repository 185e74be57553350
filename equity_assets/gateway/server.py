"""Running the gateway: blocking ``serve`` for ``equity gateway``, ``running_gateway`` for tests."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from .app import create_app
from .settings import GatewaySettings

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
_START_TIMEOUT_S = 10.0
_STOP_TIMEOUT_S = 10.0


def serve(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, settings: GatewaySettings | None = None) -> None:
    """Serve the gateway until interrupted (Ctrl+C / SIGTERM).

    Behind a reverse proxy on another host, set ``FORWARDED_ALLOW_IPS`` to the proxy's address so
    uvicorn takes the client IP (used for rate limiting) from X-Forwarded-For; by default only a
    proxy on loopback is trusted, so a client cannot pick its own IP.
    """
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info")


@contextmanager
def running_gateway(settings: GatewaySettings | None = None, host: str = DEFAULT_HOST) -> Iterator[str]:
    """Run the gateway on an ephemeral port in a background thread; yields its base URL.

    The socket is bound first so the port is known up front; the server stops (and its thread is
    joined) when the block exits, even on error.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(settings), log_level="warning", access_log=False,
                                           timeout_graceful_shutdown=2))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=f"gateway:{port}", daemon=True)
    thread.start()
    try:
        _wait_until_started(server, thread)
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(_STOP_TIMEOUT_S)
        sock.close()


def _wait_until_started(server: uvicorn.Server, thread: threading.Thread) -> None:
    deadline = time.monotonic() + _START_TIMEOUT_S
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("gateway server thread exited during start-up")
        if time.monotonic() > deadline:
            raise TimeoutError(f"gateway did not start within {_START_TIMEOUT_S} s")
        time.sleep(0.005)
