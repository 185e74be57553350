"""Signing what we send to a broker's notification webhook (Standard Webhooks headers).

Each broker has their own secrets (created and rotated from the portal's Settings page). While a
rotation is in progress both the new and the previous secret sign, as separate ``v1`` entries of
``webhook-signature``, so the broker's receiver accepts the message under either.
"""

from __future__ import annotations

import secrets as random
import time
import uuid

import psycopg

from .signing import sign_standard_webhook


def broker_signing_secrets(conn: psycopg.Connection, broker_id: uuid.UUID | str) -> list[str]:
    """The broker's active secrets, newest first (read as the pipeline, ``service_role``)."""
    return [r[0] for r in conn.execute(
        "SELECT secret FROM broker_active_notify_secrets WHERE broker_id = %s ORDER BY created_at DESC", (broker_id,))]


def notification_headers(body: bytes, secrets: list[str], *, msg_id: str | None = None,
                         timestamp: int | None = None) -> dict[str, str]:
    """Standard Webhooks headers for ``body`` with one ``v1`` signature per active secret."""
    if not secrets:
        raise ValueError("the broker has no signing secret")
    msg_id = msg_id or f"msg_{random.token_hex(12)}"
    timestamp = int(time.time()) if timestamp is None else timestamp
    signed = [sign_standard_webhook(body, s, msg_id, timestamp) for s in secrets]
    return {**signed[0], "webhook-signature": " ".join(h["webhook-signature"] for h in signed)}
