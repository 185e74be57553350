"""Running the sandbox: blocking ``serve`` for the CLI, ``running_sandbox`` for tests and benchmarks."""

from __future__ import annotations

import uvicorn

from equity_assets.sandbox.app import create_app
from equity_assets.sandbox.config import SandboxConfig
from equity_assets.serving import running_in_thread


def serve(host: str = "127.0.0.1", port: int = 8090, config: SandboxConfig | None = None) -> None:
    """Serve the sandbox until interrupted (Ctrl+C / SIGTERM). ``config`` defaults to the environment."""
    uvicorn.run(
        create_app(config or SandboxConfig.from_env()),
        host=host,
        port=port,
        log_level="info",
        access_log=False,
    )


def running_sandbox(config: SandboxConfig | None = None, host: str = "127.0.0.1"):
    """Run a sandbox on an ephemeral port in a background thread (context manager yielding its URL).

    In-flight requests stuck in a timeout fault must not hold the shutdown hostage: 1 s grace.
    """
    return running_in_thread(create_app(config), name="sandbox", host=host, graceful_shutdown_s=1)
