"""The sandbox's VAPI speaks VAPI's wire format: bearer key, 201 Call objects, metadata only in overrides."""

from __future__ import annotations

from datetime import datetime, timezone

import requests

from equity_assets.sandbox import SandboxConfig
from equity_assets.sandbox.dice import Dice
from equity_assets.sandbox.vapi import build_report

KEY = SandboxConfig().vapi_api_key
BODY = {"assistantId": "a1", "phoneNumberId": "pn-1", "customer": {"number": "+12125550101", "name": "Ann"},
        "assistantOverrides": {"variableValues": {"first_name": "Ann"}, "metadata": {"lead_id": "l1"}}}


def post(url: str, body: dict, key: str = KEY) -> requests.Response:
    return requests.post(f"{url}/call", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=5)


def test_create_answers_201_with_a_call_object(sandbox_url):
    answer = post(sandbox_url, BODY)
    assert answer.status_code == 201
    call = answer.json()
    assert call["status"] == "queued" and call["phoneNumberId"] == "pn-1"
    assert call["assistantOverrides"]["metadata"] == {"lead_id": "l1"}
    fetched = requests.get(f"{sandbox_url}/call/{call['id']}", headers={"Authorization": f"Bearer {KEY}"}, timeout=5)
    assert fetched.json()["id"] == call["id"]


def test_refusals(sandbox_url):
    assert post(sandbox_url, BODY, key="wrong").status_code == 401
    assert post(sandbox_url, {**BODY, "metadata": {"lead_id": "l1"}}).status_code == 400  # no top-level metadata
    assert post(sandbox_url, {**BODY, "customer": {"number": "2125550101"}}).status_code == 400


def test_reports_are_deterministic_and_carry_a_reason():
    call = {"id": "c1", "customer": {"number": "+12125550101"}, "phoneNumberId": "pn-1", "assistantOverrides": {}}
    at = datetime(2026, 7, 1, 16, 0, tzinfo=timezone.utc)
    first = build_report(dict(call), Dice(1, "vapi-outcome", "+12125550101", "0"), started=at, timestamp_ms=1)
    again = build_report(dict(call), Dice(1, "vapi-outcome", "+12125550101", "0"), started=at, timestamp_ms=1)
    assert first == again
    message = first["message"]
    assert message["type"] == "end-of-call-report" and message["endedReason"]
    outcomes = {build_report(dict(call), Dice(1, "vapi-outcome", f"+1212555{i:04d}", "0"), started=at,
                             timestamp_ms=1)["message"]["endedReason"] for i in range(200)}
    assert {"customer-did-not-answer", "customer-busy", "voicemail", "assistant-ended-call"} <= outcomes
