"""Local simulators of the external services (Melissa, BatchData, Instantly, VAPI), same wire formats.

Start one in-process for tests with :func:`running_sandbox`, or as a server with
``python -m equity_assets.sandbox`` (see :mod:`equity_assets.sandbox.__main__`).
"""

from equity_assets.sandbox.app import VENDOR_PATHS, create_app
from equity_assets.sandbox.config import FaultKnobs, SandboxConfig
from equity_assets.sandbox.control import SandboxControl
from equity_assets.sandbox.server import running_sandbox, serve

__all__ = [
    "VENDOR_PATHS",
    "FaultKnobs",
    "SandboxConfig",
    "SandboxControl",
    "create_app",
    "running_sandbox",
    "serve",
]
