"""``python -m equity_assets.sandbox [--host H] [--port P]``: serve the sandbox (knobs from EQUITY_SANDBOX_*)."""

from __future__ import annotations

import argparse

from equity_assets.sandbox.config import SandboxConfig
from equity_assets.sandbox.server import serve


def main(argv: list[str] | None = None) -> None:
    """Parse arguments and serve until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m equity_assets.sandbox", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    args = parser.parse_args(argv)
    serve(args.host, args.port, SandboxConfig.from_env())


if __name__ == "__main__":
    main()
