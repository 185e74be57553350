"""BatchDataResource against the sandbox, and the tolerant (fail-closed) skip-trace parser."""

from __future__ import annotations

import pytest

from equity_assets.sandbox import VENDOR_PATHS, SandboxConfig, SandboxControl
from equity_assets.vendors.batchdata import BatchDataResource, parse_skip_trace_response, SkipTraceInput, SkipTraceResult
from equity_assets.vendors.http import ProviderAuthError

BATCHDATA = VENDOR_PATHS["batchdata"]
TOKEN = SandboxConfig().batchdata_api_token


def batchdata(url: str, **overrides) -> BatchDataResource:
    settings = {"api_token": TOKEN, "base_url": url, "max_retries": 2, "backoff_factor": 0.01, "backoff_jitter": 0.01}
    return BatchDataResource(**{**settings, **overrides})


def properties(count: int) -> list[SkipTraceInput]:
    return [
        SkipTraceInput(request_id=f"lead-{n}", street=f"{n + 1} Globe Ave", city="Buckeye", state="AZ", zip="85326")
        for n in range(count)
    ]


def test_match_and_no_match_in_input_order(sandbox_url: str, sandbox_control: SandboxControl) -> None:
    requests = properties(250) + [SkipTraceInput(request_id="by-apn", apn="123-45-678", county="Maricopa", state="AZ")]
    results = batchdata(sandbox_url, max_concurrency=3).skip_trace(requests=requests)
    assert [r.request_id for r in results] == [r.request_id for r in requests]
    matched = [r for r in results if r.matched]
    assert 0.7 * len(results) <= len(matched) < len(results)
    assert all(r.persons == () for r in results if not r.matched)
    assert all(r.owners for r in matched)
    assert sandbox_control.stats()["requests"][f"POST {BATCHDATA}"] == 3


def test_dnc_tcpa_litigator_deceased_flags_parse(sandbox_url: str) -> None:
    results = batchdata(sandbox_url).skip_trace(requests=properties(300))
    persons = [p for r in results for p in r.persons]
    phones = [phone for p in persons for phone in p.phones]
    assert any(phone.dnc for phone in phones) and any(phone.tcpa for phone in phones)
    assert any(phone.callable for phone in phones)
    assert any(p.litigator for p in persons) and any(p.deceased for p in persons)
    for person in persons:
        assert all(phone.callable for phone in person.callable_phones)
        if not person.contactable:
            assert person.callable_phones == ()
    assert all(len(phone.number) == 10 for phone in phones)
    assert any(p.emails for p in persons)
    assert all(p.birth_year and 1900 < p.birth_year < 2010 for p in persons)


def test_bad_token_is_an_auth_error(sandbox_url: str) -> None:
    with pytest.raises(ProviderAuthError) as failure:
        batchdata(sandbox_url, api_token="wrong").skip_trace(requests=properties(1))
    assert failure.value.status_code == 401 and failure.value.retries == 0


def test_missing_compliance_flags_fail_closed() -> None:
    body = {
        "status": {"code": 200, "text": "OK"},
        "result": {
            "data": [
                {
                    "input": {"requestId": "x"},
                    "persons": [{"name": {"first": "Ann", "last": "Lee"}, "phones": [{"number": "6025550100", "dnc": "false"}]}],
                    "meta": {"matched": True, "error": False},
                }
            ],
            "meta": {"results": {"requestCount": 1, "matchCount": 1, "noMatchCount": 0, "errorCount": 0}},
        },
    }
    parsed = parse_skip_trace_response(body)
    assert parsed.match_count == 1
    (result,) = parsed.results
    assert isinstance(result, SkipTraceResult) and result.request_id == "x" and result.matched
    (person,) = result.persons
    (phone,) = person.phones
    assert phone.dnc is False and phone.tcpa is True  # text "false" read; absent tcpa counts as set
    assert person.litigator and person.deceased and person.callable_phones == ()
