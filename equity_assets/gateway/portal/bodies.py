"""Reading small request bodies with a hard size limit, for forms and JSON reports."""

from __future__ import annotations

from urllib.parse import parse_qs

from fastapi import Request


async def read_limited(request: Request, max_bytes: int) -> bytes | None:
    """The raw body, or None once it grows past ``max_bytes`` (the rest is never buffered)."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            return None
    return body


async def read_form(request: Request, max_bytes: int = 16 * 1024, max_fields: int = 30) -> dict[str, str]:
    """A urlencoded form's first value per field; empty when the body is too large."""
    body = await read_limited(request, max_bytes)
    if body is None:
        return {}
    fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=max_fields)
    return {k: v[0] for k, v in fields.items()}
