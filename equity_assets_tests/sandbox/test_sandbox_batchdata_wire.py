"""The sandbox's BatchData skip-trace endpoint: auth, limits, documented envelope, realistic flags."""

from __future__ import annotations

from typing import Any

import requests

from equity_assets.sandbox import SandboxConfig

PATH = "/api/v3/property/skip-trace"
TOKEN = SandboxConfig().batchdata_api_token


def trace_requests(count: int, *, offset: int = 0) -> list[dict[str, Any]]:
    return [
        {
            "requestId": f"r{n}",
            "propertyAddress": {"street": f"{10 + n} Rosegold St", "city": "Franklin Square", "state": "NY", "zip": "11010"},
        }
        for n in range(offset, offset + count)
    ]


def post_trace(url: str, body: Any, *, token: str | None = TOKEN) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.post(url + PATH, json=body, headers=headers, timeout=10)


def test_bearer_token_is_required(sandbox_url: str) -> None:
    body = {"requests": trace_requests(1)}
    assert post_trace(sandbox_url, body, token=None).status_code == 401
    wrong = post_trace(sandbox_url, body, token="nope")
    assert wrong.status_code == 401 and wrong.json()["status"]["code"] == 401
    assert post_trace(sandbox_url, body).status_code == 200


def test_more_than_100_requests_is_rejected(sandbox_url: str) -> None:
    response = post_trace(sandbox_url, {"requests": trace_requests(101)})
    assert response.status_code == 400
    assert "100" in response.json()["status"]["message"]
    assert post_trace(sandbox_url, {"requests": []}).status_code == 400


def test_envelope_counts_and_echoed_ids(sandbox_url: str) -> None:
    sent = trace_requests(99) + [{"requestId": "nothing-to-trace"}]
    body = post_trace(sandbox_url, {"requests": sent, "options": {"includeTCPABlacklistedPhones": True}}).json()
    assert body["status"] == {"code": 200, "text": "OK"}
    data = body["result"]["data"]
    assert [item["input"]["requestId"] for item in data] == [r["requestId"] for r in sent]
    counts = body["result"]["meta"]["results"]
    matched = sum(item["meta"]["matched"] for item in data)
    assert counts["requestCount"] == 100
    assert counts["matchCount"] == matched and 70 <= matched <= 95
    assert counts["errorCount"] == 1 and data[-1]["meta"]["error"] is True
    assert counts["noMatchCount"] == 100 - matched - 1
    for item in data:
        if not item["meta"]["matched"]:
            assert item["persons"] == []


def test_persons_carry_phones_emails_and_compliance_flags(sandbox_url: str) -> None:
    matched: list[dict[str, Any]] = []
    for offset in range(0, 300, 100):
        sent = {"requests": trace_requests(100, offset=offset), "options": {"includeTCPABlacklistedPhones": True}}
        body = post_trace(sandbox_url, sent).json()
        matched.extend(item for item in body["result"]["data"] if item["meta"]["matched"])
    assert all(sum(p["propertyOwner"] for p in item["persons"]) == 1 for item in matched)
    persons = [p for item in matched for p in item["persons"]]
    phones = [phone for person in persons for phone in person["phones"]]
    assert persons and phones
    assert all(set(phone) == {"rank", "number", "type", "carrier", "tested", "reachable", "dnc", "tcpa"} for phone in phones)
    assert all(len(phone["number"]) == 10 and phone["number"].isdigit() for phone in phones)
    assert any(phone["dnc"] for phone in phones) and not all(phone["dnc"] for phone in phones)
    assert any(phone["tcpa"] for phone in phones)
    assert any(person["litigator"] for person in persons) or any(person["deceased"] for person in persons)
    assert any(person["emails"] for person in persons)
    assert all(person["dob"][:4].isdigit() for person in persons)


def test_tcpa_phones_dropped_unless_asked_for(sandbox_url: str) -> None:
    sent = trace_requests(100)
    with_tcpa = post_trace(sandbox_url, {"requests": sent, "options": {"includeTCPABlacklistedPhones": True}}).json()
    without = post_trace(sandbox_url, {"requests": sent}).json()

    def tcpa_count(body: dict[str, Any]) -> int:
        return sum(phone["tcpa"] for item in body["result"]["data"] for p in item["persons"] for phone in p["phones"])

    assert tcpa_count(with_tcpa) > 0
    assert tcpa_count(without) == 0


def test_same_request_same_answer(sandbox_url: str) -> None:
    body = {"requests": trace_requests(50), "options": {"includeTCPABlacklistedPhones": True}}
    assert post_trace(sandbox_url, body).json() == post_trace(sandbox_url, body).json()
