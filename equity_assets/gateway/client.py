"""Client for ``POST /v1/uploads``: signs a file and streams it to the gateway (``equity upload``).

The file is read twice — once to compute the signature and content hash, once while sending — so a
1 GB export never sits in memory.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests

from equity_assets.security.signing import SECRETS_ENV, RequestSigner, upload_secrets

UPLOAD_PATH = "/v1/uploads"
CHUNK_BYTES = 1024 * 1024
#: (connect, read) seconds; the read timeout covers the server's verify-and-store after the body.
DEFAULT_TIMEOUT: tuple[float, float] = (5.0, 300.0)
_ERROR_TEXT_CHARS = 300


class UploadError(RuntimeError):
    """The gateway refused the upload (non-2xx); ``error`` is its code, e.g. ``replay``."""

    def __init__(self, status: int, error: str, detail: str, body: dict[str, Any] | None = None):
        super().__init__(f"upload refused: HTTP {status} {error}: {detail}")
        self.status = status
        self.error = error
        self.detail = detail
        self.body = body or {}


def upload_file(path: str | Path, *, url: str, source: str = "propstream", secret: str | None = None,
                timeout: tuple[float, float] = DEFAULT_TIMEOUT,
                clock: Callable[[], float] = time.time) -> dict[str, Any]:
    """Sign and upload ``path``; returns the gateway's JSON answer plus ``status``.

    ``url`` is the gateway's base URL (``http://host:port``) or the full ``…/v1/uploads`` URL.
    The secret is ``secret`` or the first of ``EQUITY_UPLOAD_SECRETS``. Raises ``UploadError`` with
    the server's error code and detail on any non-2xx answer.
    """
    file = Path(path)
    key = secret or _first_env_secret()
    headers = signed_headers(file, key, int(clock()))
    headers["X-Filename"] = quote(file.name)  # headers are latin-1; percent-encode any UTF-8 name
    headers["Content-Type"] = "text/csv" if file.suffix.lower() == ".csv" else "application/octet-stream"
    with file.open("rb") as body:
        # requests streams a file object (Content-Length from its size) instead of reading it whole.
        response = requests.post(uploads_url(url), params={"source": source}, data=body, headers=headers,
                                 timeout=timeout)
    return _answer(response)


def signed_headers(path: Path, secret: str, timestamp: int) -> dict[str, str]:
    """Our scheme's signature headers for the file, computed in one streaming pass."""
    signer = RequestSigner(secret, timestamp)
    with path.open("rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            signer.update(chunk)
    return signer.headers()


def uploads_url(url: str) -> str:
    """The upload endpoint for a base URL (a URL already ending in /v1/uploads is kept)."""
    trimmed = url.rstrip("/")
    return trimmed if trimmed.endswith(UPLOAD_PATH) else trimmed + UPLOAD_PATH


def _first_env_secret() -> str:
    secrets = upload_secrets()
    if not secrets:
        raise UploadError(0, "no_secret", f"set {SECRETS_ENV} (comma-separated) or pass secret=")
    return secrets[0]


def _answer(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not 200 <= response.status_code < 300:
        if isinstance(body, dict):
            raise UploadError(response.status_code, str(body.get("error", "http_error")),
                              str(body.get("detail", "")), body)
        raise UploadError(response.status_code, "http_error", response.text[:_ERROR_TEXT_CHARS])
    return {**(body if isinstance(body, dict) else {}), "status": response.status_code}
