"""The sandbox's Instantly bulk-add endpoint: auth, limits, skip rules, rate limit, kept leads."""

from __future__ import annotations

from typing import Any

import requests

from equity_assets.sandbox import SandboxConfig, SandboxControl

PATH = "/api/v2/leads/add"
KEY = SandboxConfig().instantly_api_key


def add(url: str, body: dict[str, Any], *, key: str = KEY) -> requests.Response:
    return requests.post(url + PATH, json=body, headers={"Authorization": f"Bearer {key}"}, timeout=10)


def leads(count: int, *, offset: int = 0) -> list[dict[str, Any]]:
    return [
        {"email": f"Lead{n}@Example.com", "first_name": f"F{n}", "custom_variables": {"n": n}}
        for n in range(offset, offset + count)
    ]


def test_api_key_is_required(sandbox_url: str) -> None:
    response = add(sandbox_url, {"campaign_id": "c", "leads": leads(1)}, key="wrong")
    assert response.status_code == 401


def test_exactly_one_target_and_at_most_1000_leads(sandbox_url: str) -> None:
    assert add(sandbox_url, {"leads": leads(1)}).status_code == 400
    assert add(sandbox_url, {"campaign_id": "c", "list_id": "l", "leads": leads(1)}).status_code == 400
    too_many = add(sandbox_url, {"campaign_id": "c", "leads": leads(1001)})
    assert too_many.status_code == 400 and "1000" in too_many.json()["message"]
    assert add(sandbox_url, {"campaign_id": "c", "leads": leads(1000)}).json()["leads_uploaded"] == 1000
    assert add(sandbox_url, {"list_id": "l", "leads": leads(3)}).json()["leads_uploaded"] == 3


def test_counts_and_skip_if_in_campaign(sandbox_url: str, sandbox_control: SandboxControl) -> None:
    batch = leads(5) + [{"email": "lead0@example.com"}, {"email": "not-an-email"}, {"first_name": "no email"}]
    first = add(sandbox_url, {"campaign_id": "c1", "leads": batch, "skip_if_in_campaign": True}).json()
    assert first["leads_uploaded"] == 5
    assert first["duplicate_email_count"] == 1  # lead0 twice (case-insensitive)
    assert first["invalid_email_count"] == 2
    assert first["already_in_campaign"] == 0

    again = add(sandbox_url, {"campaign_id": "c1", "leads": leads(7), "skip_if_in_campaign": True}).json()
    assert again["leads_uploaded"] == 2 and again["already_in_campaign"] == 5

    kept = {lead["email"]: lead for lead in sandbox_control.campaign_leads("c1")}
    assert len(kept) == 7
    assert all(lead["upload_count"] == 1 for lead in kept.values())
    assert kept["lead3@example.com"]["custom_variables"] == {"n": 3}

    # Without the skip flag a re-sent lead is uploaded again (and the sandbox notices).
    add(sandbox_url, {"campaign_id": "c1", "leads": leads(1), "skip_if_in_campaign": False})
    assert {lead["email"]: lead for lead in sandbox_control.campaign_leads("c1")}["lead0@example.com"]["upload_count"] == 2
    # Other campaigns are separate.
    assert sandbox_control.campaign_leads("c2") == []


def test_rate_limit_answers_429_with_retry_after(start_sandbox) -> None:
    url = start_sandbox(SandboxConfig(instantly_rate_limit_per_s=3))
    statuses = [add(url, {"campaign_id": "c", "leads": leads(1, offset=n)}) for n in range(6)]
    throttled = [r for r in statuses if r.status_code == 429]
    assert [r.status_code for r in statuses][:3] == [200, 200, 200]
    assert len(throttled) >= 2
    assert all(int(r.headers["Retry-After"]) >= 1 for r in throttled)
    stats = SandboxControl(url).stats()
    assert stats["rate_limited_429"] == len(throttled) and stats["throttled_429"] == len(throttled)


def test_reset_forgets_leads_and_counters(sandbox_url: str, sandbox_control: SandboxControl) -> None:
    add(sandbox_url, {"campaign_id": "c1", "leads": leads(3)})
    assert len(sandbox_control.campaign_leads("c1")) == 3
    assert sandbox_control.stats()["requests"] == {f"POST {PATH}": 1}
    sandbox_control.reset()
    assert sandbox_control.campaign_leads("c1") == []
    assert sandbox_control.stats()["requests"] == {}
