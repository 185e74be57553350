"""HTTP gateway: signed uploads and the health check (FastAPI + uvicorn)."""

from .app import create_app
from .client import UploadError, upload_file
from .server import running_gateway, serve
from .settings import GatewaySettings

__all__ = ["GatewaySettings", "UploadError", "create_app", "running_gateway", "serve", "upload_file"]
