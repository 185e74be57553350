"""Wire formats of the webhooks Instantly and VAPI send us: idempotency keys and the fields we read.

Instantly posts flat JSON with no event id and no signature: ``timestamp``, ``event_type``,
``workspace``, ``campaign_id``, ``campaign_name`` and, depending on the event, ``lead_email``,
``email_account``, ``step``, ``variant``, ``email_id``, ``email_subject``, ``reply_subject``,
``reply_text``, ``reply_text_snippet``, ``reply_html``. The same delivery retried is byte-identical,
so the SHA-256 of the raw body is its key.

VAPI posts ``{"message": {...}}`` whose ``type`` is e.g. ``status-update`` or
``end-of-call-report``; the key is call id + message type + the message's timestamp.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

class WireError(ValueError):
    """The body is not the JSON shape the provider sends; ``str()`` is safe to return to the caller."""


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def json_object(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object in UTF-8 that PostgreSQL's jsonb also accepts, or :class:`WireError`."""
    try:
        text = raw.decode("utf-8")
        body = json.loads(text, parse_constant=_no_constants)
    except (UnicodeDecodeError, ValueError):
        raise WireError("body is not valid UTF-8 JSON") from None
    if "\\u0000" in text:
        raise WireError("body contains a NUL character, which cannot be stored")
    if not isinstance(body, dict):
        raise WireError("body must be a JSON object")
    return body


def instantly_event_key(raw: bytes) -> str:
    """Instantly sends no event id: a retried delivery is the same bytes, so hash them."""
    return hashlib.sha256(raw).hexdigest()


def instantly_event_type(payload: dict[str, Any]) -> str:
    """``event_type`` as sent (an unknown type is stored and left for a human, not refused)."""
    value = payload.get("event_type")
    if not isinstance(value, str) or not value.strip():
        raise WireError("event_type is missing")
    return value.strip()


def _text(payload: dict[str, Any], *names: str) -> str | None:
    for name in names:
        value = payload.get(name)
        if isinstance(value, str) and value.strip():
            return value
    return None


@dataclass(frozen=True)
class InstantlyEvent:
    """The fields of an Instantly webhook the reply pipeline reads."""

    event_type: str
    lead_email: str | None
    timestamp: str | None
    campaign_id: str | None
    reply_text: str | None
    reply_subject: str | None

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> InstantlyEvent:
        email = _text(payload, "lead_email", "email")
        return cls(
            event_type=instantly_event_type(payload),
            lead_email=email.strip().lower() if email else None,
            timestamp=_text(payload, "timestamp"),
            campaign_id=_text(payload, "campaign_id"),
            # The full text when present; the snippet is a truncated copy of it.
            reply_text=_text(payload, "reply_text", "reply_text_snippet"),
            reply_subject=_text(payload, "reply_subject", "email_subject"),
        )


def vapi_message(payload: dict[str, Any]) -> dict[str, Any]:
    """The ``message`` object of a VAPI server message."""
    message = payload.get("message")
    if not isinstance(message, dict):
        raise WireError("a VAPI server message is {\"message\": {...}}")
    if not isinstance(message.get("type"), str) or not message["type"]:
        raise WireError("message.type is missing")
    return message


def vapi_event_key(message: dict[str, Any], raw: bytes) -> str:
    """call id + message type + timestamp; a message without a call id falls back to the body hash."""
    call = message.get("call") if isinstance(message.get("call"), dict) else {}
    call_id = call.get("id")
    if not isinstance(call_id, str) or not call_id:
        return f"sha256:{hashlib.sha256(raw).hexdigest()}"
    return f"{call_id}:{message['type']}:{message.get('timestamp', '')}"
