"""Signing what we send to a broker's notification webhook (Standard Webhooks headers).

Each broker has their own secrets: one is made when the broker is added (``equity brokers add``),
and a new one by ``equity brokers rotate-secret`` or the portal's Settings page; each is shown
once. While a rotation is in progress both the new and the previous secret sign, as separate
``v1`` entries of ``webhook-signature``, so the broker's receiver accepts the message under
either. No secret is shared between brokers: one broker cannot forge another's notifications.
"""

from __future__ import annotations

import base64
import secrets as random
import time
import uuid

import psycopg

from .signing import WEBHOOK_SECRET_PREFIX, sign_standard_webhook

#: How long the previous secret keeps signing after a rotation.
ROTATION_OVERLAP = "24 hours"


def new_signing_secret() -> str:
    """A fresh Standard Webhooks secret: ``whsec_`` + 32 random bytes in base64."""
    return WEBHOOK_SECRET_PREFIX + base64.b64encode(random.token_bytes(32)).decode("ascii")


def issue_signing_secret(conn: psycopg.Connection, broker_id: uuid.UUID | str) -> str:
    """Give a broker a new secret (as ``service_role``, e.g. the CLI); the previous ones retire in
    24 hours. Returns the secret, to be shown to the broker once."""
    fresh = new_signing_secret()
    conn.execute(
        """UPDATE broker_notify_secrets
              SET retires_at = least(coalesce(retires_at, 'infinity'), now() + %s::interval)
            WHERE broker_id = %s""",
        (ROTATION_OVERLAP, broker_id),
    )
    conn.execute("INSERT INTO broker_notify_secrets (broker_id, secret) VALUES (%s, %s)", (broker_id, fresh))
    return fresh


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
