"""Simulated Instantly webhooks: registration (``POST /api/v2/webhooks``) and delivery after a push.

Like Instantly, the sandbox signs nothing: it sends the custom headers given at registration
(that is where our shared secret travels). Every lead accepted by ``/api/v2/leads/add`` gets an
``email_sent`` event, then — drawn from the seeded dice, so the same lead always behaves the same —
one of these outcomes:

======================  ======  =========================================================
outcome                 share   what is sent
======================  ======  =========================================================
reply                   30 %    ``reply_received`` with a text from ``REPLIES`` (below)
bounce                  4 %     ``email_bounced``
unsubscribe             3 %     ``lead_unsubscribed``
silence                 63 %    nothing more
======================  ======  =========================================================

``REPLIES`` mixes interested replies and questions (half the replies), "not interested", STOP-style
revocations with signatures and quoted threads, out-of-office auto-replies, wrong person and an
abusive one. Deliveries run on a background thread, in order, retried with backoff on a network
error or a non-2xx answer (honouring ``Retry-After`` on a 429, like a provider would), and counted in
``GET /_sandbox/webhooks``.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from equity_assets.sandbox.dice import Dice
from equity_assets.sandbox.wire import MalformedBody, bearer_token, json_response, read_json_object

PATH = "/api/v2/webhooks"
ALL_EVENTS = "all_events"
DELIVERY_TRIES = 8
MAX_RETRY_AFTER_S = 60.0
DELIVERY_TIMEOUT_S = 10.0

_QUOTE = ("\n\nOn Tue, Nov 24, 2026 at 6:00 AM Equity Connect <hello@equityconnect.example> wrote:\n"
          "> Curious what your home's equity could do for you? Reply to this e-mail.\n"
          "> Reply STOP or click unsubscribe to opt out.\n")

#: (intent the text was written as, weight, text) — the documented reply mix.
REPLIES: list[tuple[str, float, str]] = [
    ("interested", 12, "Yes, I'm interested. Please call me after 3pm." + _QUOTE),
    ("interested", 10, "Tell me more\n\nSent from my iPhone"),
    ("interested", 8, "sounds good, give me a call this week\n\n--\nHarold Jensen"),
    ("question", 10, "How much could I get, and do I have to move out?" + _QUOTE),
    ("question", 8, "Is this a government program? What are the fees?"),
    ("not_interested", 10, "Not interested, thanks."),
    ("not_interested", 5, "No gracias."),
    ("unsubscribe", 8, "STOP"),
    ("unsubscribe", 5, "Please remove me from your list.\n\nRegards,\nMarian Cole\n(555) 010-2231"),
    ("unsubscribe", 4, "unsubscribe" + _QUOTE),
    ("unsubscribe", 3, "Stop emailing me."),
    ("out_of_office", 8, "Automatic reply: I am out of the office until Monday with limited access to e-mail."),
    ("wrong_person", 5, "You have the wrong person, I sold that house in 2019."),
    ("hostile", 2, "This is a scam. I'll report you to the attorney general."),
]
_OUTCOMES = [("reply", 0.30), ("bounce", 0.04), ("unsubscribe", 0.03), ("silence", 0.63)]


@dataclass
class Registration:
    id: str
    target_hook_url: str
    event_type: str
    campaign: str | None
    headers: dict[str, str]


@dataclass
class DeliveryStats:
    queued: int = 0
    delivered: int = 0
    failed: int = 0
    retries: int = 0
    by_type: dict[str, int] = field(default_factory=dict)

    def as_dict(self, pending: int) -> dict[str, Any]:
        return {"queued": self.queued, "delivered": self.delivered, "failed": self.failed,
                "retries": self.retries, "pending": pending, "by_type": dict(self.by_type)}


class WebhookSender:
    """Registered webhooks and a delivery thread that posts events to them, in order."""

    def __init__(self, seed: int, retry_base_s: float = 0.2) -> None:
        self.seed = seed
        self.retry_base_s = retry_base_s
        self.registrations: list[Registration] = []
        self.stats = DeliveryStats()
        self._queue: queue.Queue[tuple[Registration, bytes, str]] = queue.Queue()
        self._lock = threading.Lock()
        self._in_flight = 0
        threading.Thread(target=self._deliver_forever, name="sandbox-webhooks", daemon=True).start()

    def register(self, body: dict[str, Any]) -> Registration:
        headers = body.get("headers") or {}
        registration = Registration(id=str(uuid.uuid4()), target_hook_url=body["target_hook_url"],
                                    event_type=body.get("event_type") or ALL_EVENTS, campaign=body.get("campaign"),
                                    headers={str(k): str(v) for k, v in headers.items()})
        self.registrations.append(registration)
        return registration

    @property
    def pending(self) -> int:
        with self._lock:
            return self._queue.qsize() + self._in_flight

    def leads_pushed(self, campaign_id: str, leads: list[dict[str, Any]]) -> None:
        """Queue what Instantly would report for newly added leads of a campaign."""
        if not self.registrations:
            return
        for lead in leads:
            for event in lead_events(self.seed, campaign_id, lead["email"]):
                self._enqueue(event, campaign_id)

    def _enqueue(self, event: dict[str, Any], campaign_id: str) -> None:
        body = json.dumps(event).encode()
        for registration in self.registrations:
            if registration.event_type not in (ALL_EVENTS, event["event_type"]):
                continue
            if registration.campaign and registration.campaign != campaign_id:
                continue
            with self._lock:
                self.stats.queued += 1
                self._queue.put((registration, body, event["event_type"]))

    def _deliver_forever(self) -> None:
        while True:
            registration, body, event_type = self._queue.get()
            with self._lock:
                self._in_flight += 1
            try:
                ok = self._deliver(registration, body)
            finally:
                with self._lock:
                    self._in_flight -= 1
                    if ok:
                        self.stats.delivered += 1
                        self.stats.by_type[event_type] = self.stats.by_type.get(event_type, 0) + 1
                    else:
                        self.stats.failed += 1

    def _deliver(self, registration: Registration, body: bytes) -> bool:
        headers = {"Content-Type": "application/json", **registration.headers}
        for attempt in range(DELIVERY_TRIES):
            wait = self.retry_base_s * 2 ** attempt
            request = urllib.request.Request(registration.target_hook_url, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=DELIVERY_TIMEOUT_S):
                    return True  # urlopen raises HTTPError on any status outside 2xx/3xx
            except urllib.error.HTTPError as answer:
                retry_after = answer.headers.get("Retry-After", "")
                if answer.code == 429 and retry_after.isdigit():
                    wait = min(float(retry_after), MAX_RETRY_AFTER_S)
            except (urllib.error.URLError, OSError):
                pass
            with self._lock:
                self.stats.retries += 1
            time.sleep(wait)
        return False


def lead_events(seed: int, campaign_id: str, email: str) -> list[dict[str, Any]]:
    """The events Instantly would send about one lead, fixed by the seed and the address."""
    dice = Dice(seed, "instantly-webhook", campaign_id, email)
    base = {"workspace": "sandbox-workspace", "campaign_id": campaign_id, "campaign_name": f"Campaign {campaign_id}",
            "lead_email": email, "email_account": "outreach@equityconnect.example", "step": 1, "variant": 1}
    now = datetime.now(UTC)
    stamp = now.isoformat().replace("+00:00", "Z")
    events = [{"timestamp": stamp, "event_type": "email_sent", "email_subject": "Your home's equity", **base}]
    outcome = dice.weighted(0, _OUTCOMES)
    if outcome == "reply":
        _, _, text = dice.weighted(1, [(r, r[1]) for r in REPLIES])
        events.append({"timestamp": stamp, "event_type": "reply_received", "reply_subject": "Re: Your home's equity",
                       "reply_text": text, "reply_text_snippet": text[:100], "email_id": str(uuid.uuid4()), **base})
    elif outcome == "bounce":
        events.append({"timestamp": stamp, "event_type": "email_bounced", **base})
    elif outcome == "unsubscribe":
        events.append({"timestamp": stamp, "event_type": "lead_unsubscribed", **base})
    return events


router = APIRouter()


@router.post(PATH)
async def register_webhook(request: Request) -> Response:
    """Register a webhook: ``{target_hook_url, event_type?, campaign?, headers?}``."""
    state = request.app.state.sandbox
    if bearer_token(request) != state.config.instantly_api_key:
        return json_response({"statusCode": 401, "error": "Unauthorized", "message": "Invalid API key"}, status=401)
    try:
        body = await read_json_object(request)
    except MalformedBody as exc:
        return json_response({"statusCode": 400, "error": "Bad Request", "message": str(exc)}, status=400)
    url = body.get("target_hook_url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        return json_response({"statusCode": 400, "error": "Bad Request",
                              "message": "target_hook_url must be an http(s) URL"}, status=400)
    if body.get("headers") is not None and not isinstance(body["headers"], dict):
        return json_response({"statusCode": 400, "error": "Bad Request", "message": "headers must be an object"},
                             status=400)
    registration = state.webhooks.register(body)
    return json_response({"id": registration.id, "target_hook_url": registration.target_hook_url,
                          "event_type": registration.event_type, "campaign": registration.campaign})
