"""Simulated VAPI: ``POST /call`` → 201 Call, ``GET /call``, ``GET /call/{id}``, and the server messages.

A short while after a call is created the sandbox posts, like VAPI does, ``status-update``
messages (ringing, in-progress) and one ``end-of-call-report`` to the server URL — the call's
``assistantOverrides.server.url``, else ``vapi_server_url`` — authenticated with
``vapi_webhook_secret`` as a bearer credential or with the HMAC plan (``x-signature`` = hex
HMAC-SHA256 of ``"{x-timestamp}.{body}"``). Each message is sent once and never retried, as VAPI does.

Outcomes are deterministic: a keyed hash of the seed, the customer number and how many calls that
number has had picks booked / callback / not interested / opt-out / no answer / busy / voicemail /
pipeline error, with the matching ``endedReason``, transcript and ``analysis.structuredData``.
Knobs (rates, drawn per call from the same hash): ``vapi_lost_rate`` (no report at all),
``vapi_duplicate_rate`` (the report sent twice, the copy with a later timestamp) and
``vapi_out_of_order_rate`` (the report before the status updates).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from equity_assets.sandbox.dice import Dice
from equity_assets.sandbox.state import SandboxState
from equity_assets.sandbox.wire import MalformedBody, bearer_token, json_response, read_json_object

PATH = "/call"

#: (outcome, weight, endedReason, answered)
OUTCOMES: tuple[tuple[str, float, str, bool], ...] = (
    ("booked", 0.30, "assistant-ended-call", True),
    ("callback", 0.10, "customer-ended-call", True),
    ("not_interested", 0.10, "customer-ended-call", True),
    ("opt_out", 0.05, "customer-ended-call", True),
    ("no_answer", 0.20, "customer-did-not-answer", False),
    ("busy", 0.08, "customer-busy", False),
    ("voicemail", 0.12, "voicemail", False),
    ("error", 0.05, "pipeline-error-openai-llm-failed", False),
)
_TRANSCRIPTS = {
    "booked": "AI: Would Tuesday at ten work for a call with your broker?\nUser: Yes, Tuesday at ten is fine.",
    "callback": "AI: Is now a good time?\nUser: Not really, can you call me back tomorrow afternoon?",
    "not_interested": "AI: Would you like to hear your options?\nUser: No thanks, I'm not interested.",
    "opt_out": "AI: Would you like to hear your options?\nUser: Please stop calling me and take me off your list.",
}

router = APIRouter()


@dataclass
class VapiWorkspace:
    """Calls the simulated VAPI placed, and the message tasks still to run."""

    calls: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls_per_number: dict[str, int] = field(default_factory=dict)
    messages_sent: list[dict[str, Any]] = field(default_factory=list)
    tasks: set[asyncio.Task] = field(default_factory=set)


def _workspace(state: SandboxState) -> VapiWorkspace:
    if state.vapi is None:
        state.vapi = VapiWorkspace()
    return state.vapi


def _iso(at: datetime) -> str:
    return at.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _now_iso() -> str:
    return _iso(datetime.now(timezone.utc))


@router.post(PATH)
async def create_call(request: Request) -> Response:
    """Place a call: 201 with the Call object; its messages follow after ``vapi_report_delay_s``."""
    state: SandboxState = request.app.state.sandbox
    if bearer_token(request) != state.config.vapi_api_key:
        return _error(401, "Unauthorized", "Invalid API key")
    try:
        body = await read_json_object(request)
    except MalformedBody as exc:
        return _error(400, "Bad Request", str(exc))
    customer = body.get("customer") if isinstance(body.get("customer"), dict) else {}
    number = customer.get("number")
    if not isinstance(number, str) or not number.startswith("+") or not number[1:].isdigit():
        return _error(400, "Bad Request", "customer.number must be an E.164 number")
    if not isinstance(body.get("phoneNumberId"), str) or not body["phoneNumberId"]:
        return _error(400, "Bad Request", "phoneNumberId is required")
    if not body.get("assistantId") and not isinstance(body.get("assistant"), dict):
        return _error(400, "Bad Request", "assistantId or assistant is required")
    if "metadata" in body:
        return _error(400, "Bad Request", "property metadata should not exist (use assistantOverrides.metadata)")
    vapi = _workspace(state)
    seed = state.config.seed
    nth = vapi.calls_per_number.get(number, 0)
    vapi.calls_per_number[number] = nth + 1
    call_id = str(uuid.UUID(int=Dice(seed, "vapi-call", number, str(nth), str(len(vapi.calls))).big(), version=4))
    stamp = _now_iso()
    call = {
        "id": call_id, "orgId": "sandbox-org", "type": "outboundPhoneCall", "status": "queued",
        "createdAt": stamp, "updatedAt": stamp, "assistantId": body.get("assistantId"),
        "phoneNumberId": body["phoneNumberId"], "customer": customer,
        "assistantOverrides": body.get("assistantOverrides") or {},
    }
    vapi.calls[call_id] = call
    state.stats.records["vapi_calls"] += 1
    url = _server_url(call, state)
    if url:
        task = asyncio.get_running_loop().create_task(_play(state, call, url, Dice(seed, "vapi-outcome", number, str(nth))))
        vapi.tasks.add(task)
        task.add_done_callback(vapi.tasks.discard)
    if state.config.vapi_answer_delay_s:
        await asyncio.sleep(state.config.vapi_answer_delay_s)
    return json_response(call, status=201)


@router.get(PATH)
async def list_calls(request: Request) -> Response:
    """Calls, newest first, filtered by ``phoneNumberId`` / ``createdAtGt`` / ``limit`` as VAPI does."""
    state: SandboxState = request.app.state.sandbox
    if bearer_token(request) != state.config.vapi_api_key:
        return _error(401, "Unauthorized", "Invalid API key")
    q = request.query_params
    calls = list(_workspace(state).calls.values())
    if q.get("phoneNumberId"):
        calls = [c for c in calls if c["phoneNumberId"] == q["phoneNumberId"]]
    if q.get("createdAtGt"):
        since = _parse(q["createdAtGt"])
        calls = [c for c in calls if since is None or _parse(c["createdAt"]) > since]
    calls.sort(key=lambda c: c["createdAt"], reverse=True)
    limit = int(q["limit"]) if q.get("limit", "").isdigit() else 100
    return json_response(calls[:limit])


@router.get(PATH + "/{call_id}")
async def get_call(call_id: str, request: Request) -> Response:
    state: SandboxState = request.app.state.sandbox
    if bearer_token(request) != state.config.vapi_api_key:
        return _error(401, "Unauthorized", "Invalid API key")
    call = _workspace(state).calls.get(call_id)
    return json_response(call) if call else _error(404, "Not Found", "call not found")


@router.get("/_sandbox/vapi/messages")
async def messages_sent(request: Request) -> Response:
    """Every server message the simulated VAPI posted, with the status it got back (for tests)."""
    return json_response(_workspace(request.app.state.sandbox).messages_sent)


def _parse(text: str) -> datetime | None:
    try:
        stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc)


def _server_url(call: dict[str, Any], state: SandboxState) -> str | None:
    server = call["assistantOverrides"].get("server")
    if isinstance(server, dict) and isinstance(server.get("url"), str):
        return server["url"]
    return state.config.vapi_server_url


def _outcome(dice: Dice) -> tuple[str, str, bool]:
    name = dice.weighted(0, [(o[0], o[1]) for o in OUTCOMES])
    _, _, reason, answered = next(o for o in OUTCOMES if o[0] == name)
    return name, reason, answered


def build_report(call: dict[str, Any], dice: Dice, *, started: datetime, timestamp_ms: int) -> dict[str, Any]:
    """The end-of-call-report message of one call (and the call's final state)."""
    outcome, reason, answered = _outcome(dice)
    seconds = 30 + dice.below(1, 240) if answered else dice.below(2, 25)
    ended = started + timedelta(seconds=seconds)
    analysis: dict[str, Any] = {}
    if answered:
        structured: dict[str, Any] = {"outcome": "not_interested" if outcome == "opt_out" else outcome}
        if outcome == "booked":
            structured["appointmentAt"] = (ended + timedelta(days=2)).replace(microsecond=0).isoformat()
        if outcome == "callback":
            structured["callbackAt"] = (ended + timedelta(days=1)).replace(microsecond=0).isoformat()
        # One answered call in four carries no structured data: the receiver must map endedReason.
        if outcome != "booked" and dice.chance(3, 0.25):
            structured = {}
        analysis = {"summary": f"Call ended: {outcome}.", "structuredData": structured,
                    "successEvaluation": str(outcome == "booked").lower()}
    transcript = _TRANSCRIPTS.get(outcome, "")
    artifact = {"transcript": transcript, "recordingUrl": None, "messages": []}
    call.update(status="ended", endedReason=reason, startedAt=started.isoformat(), endedAt=ended.isoformat(),
                cost=round(0.05 + seconds * 0.0015, 4), analysis=analysis, artifact=artifact,
                updatedAt=_iso(ended))  # the call's last change is its end: a report is a function of its dice
    return {"message": {
        "type": "end-of-call-report", "endedReason": reason, "call": dict(call),
        "customer": call["customer"], "phoneNumber": {"id": call["phoneNumberId"]},
        "startedAt": call["startedAt"], "endedAt": call["endedAt"], "cost": call["cost"],
        "artifact": artifact, "analysis": analysis, "timestamp": timestamp_ms,
    }}


async def _play(state: SandboxState, call: dict[str, Any], url: str, dice: Dice) -> None:
    """Send the call's status updates and report, with the configured delay and faults."""
    config = state.config
    await asyncio.sleep(config.vapi_report_delay_s)
    base_ms = int(time.time() * 1000)
    started = datetime.now(timezone.utc)
    _, _, answered = _outcome(dice)
    updates = [("ringing", base_ms)] + ([("in-progress", base_ms + 1)] if answered else [])
    messages = [{"message": {"type": "status-update", "status": status, "call": {**call, "status": status},
                             "timestamp": ms}} for status, ms in updates]
    report = build_report(call, dice, started=started, timestamp_ms=base_ms + 2)
    if dice.chance(4, config.vapi_lost_rate):
        report = None
    elif dice.chance(5, config.vapi_out_of_order_rate):
        messages.insert(0, report)
        report = None
    if report is not None:
        messages.append(report)
        if dice.chance(6, config.vapi_duplicate_rate):
            copy = json.loads(json.dumps(report))
            copy["message"]["timestamp"] += 1000
            messages.append(copy)
    for message in messages:
        await asyncio.to_thread(_post, state, url, message)


def _post(state: SandboxState, url: str, message: dict[str, Any]) -> None:
    config = state.config
    raw = json.dumps(message, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json"}
    if config.vapi_webhook_auth == "hmac":
        stamp = str(int(time.time()))
        headers["x-timestamp"] = stamp
        headers["x-signature"] = hmac.new(config.vapi_webhook_secret.encode(), stamp.encode() + b"." + raw,
                                          hashlib.sha256).hexdigest()
    else:
        headers["Authorization"] = f"Bearer {config.vapi_webhook_secret}"
    entry = {"type": message["message"]["type"], "call_id": message["message"]["call"]["id"], "status": None}
    request = urllib.request.Request(url, data=raw, headers=headers, method="POST")
    try:  # sent once, never retried (VAPI does the same)
        with urllib.request.urlopen(request, timeout=20) as answer:
            entry["status"] = answer.status
    except urllib.error.HTTPError as answer:
        entry["status"] = answer.code
    except (urllib.error.URLError, OSError) as exc:
        entry["status"] = type(exc).__name__
    state.stats.records["vapi_messages"] += 1
    _workspace(state).messages_sent.append(entry)


def _error(status: int, error: str, message: str) -> Response:
    return json_response({"statusCode": status, "error": error, "message": message}, status=status)
