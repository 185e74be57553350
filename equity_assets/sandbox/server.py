"""Running the sandbox: blocking ``serve`` for the CLI, ``running_sandbox`` for tests and benchmarks."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from equity_assets.sandbox.app import create_app
from equity_assets.sandbox.config import SandboxConfig

START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0


def serve(host: str = "127.0.0.1", port: int = 8090, config: SandboxConfig | None = None) -> None:
    """Serve the sandbox until interrupted (Ctrl+C / SIGTERM). ``config`` defaults to the environment."""
    uvicorn.run(
        create_app(config or SandboxConfig.from_env()),
        host=host,
        port=port,
        log_level="info",
        access_log=False,
    )


@contextmanager
def running_sandbox(config: SandboxConfig | None = None, host: str = "127.0.0.1") -> Iterator[str]:
    """Run a sandbox on an ephemeral port in a background thread (context manager yielding its URL).

    The socket is bound first, so the port is known without parsing logs. In-flight requests stuck
    in a timeout fault must not hold the shutdown hostage: 1 s grace. (The sandbox is sealed from
    the package, so it does not share the gateway's equivalent helper.)
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(config), log_level="warning", access_log=False, timeout_graceful_shutdown=1)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=f"sandbox:{port}", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("sandbox server thread exited during start-up")
            if time.monotonic() > deadline:
                raise TimeoutError(f"sandbox did not start within {START_TIMEOUT_S} s")
            time.sleep(0.005)
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(STOP_TIMEOUT_S)
        sock.close()
