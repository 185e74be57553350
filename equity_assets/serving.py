"""Running an ASGI app in a background thread: how tests, the demo and benchmarks start our servers."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0


@contextmanager
def running_in_thread(app, *, name: str, host: str = "127.0.0.1", graceful_shutdown_s: int = 2) -> Iterator[str]:
    """Serve `app` on an ephemeral port of `host` in a daemon thread; yields its base URL.

    The socket is bound before the server starts, so the port is known without parsing logs; the
    server is stopped and its thread joined when the block exits, even on error.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    # proxy_headers off: uvicorn would otherwise let any loopback client set its own address
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, proxy_headers=False,
                                           timeout_graceful_shutdown=graceful_shutdown_s))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=f"{name}:{port}", daemon=True)
    thread.start()
    try:
        wait_until_started(server, thread, name)
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(STOP_TIMEOUT_S)
        sock.close()


def wait_until_started(server: uvicorn.Server, thread: threading.Thread, name: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError(f"{name} server thread exited during start-up")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{name} did not start within {START_TIMEOUT_S} s")
        time.sleep(0.005)
