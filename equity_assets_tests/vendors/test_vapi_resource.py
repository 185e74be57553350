"""VapiResource on the shared vendor HTTP base, against the sandbox: timeouts, retries counted,
Retry-After honoured, a create never repeated by the session itself, typed failures unchanged."""

from __future__ import annotations

import time

import pytest

from equity_assets.sandbox import SandboxConfig, SandboxControl
from equity_assets.vendors.http import HttpApiResource, backoff_delay
from equity_assets.vendors.vapi import VapiError, VapiResource

KEY = SandboxConfig().vapi_api_key


def vapi(url: str, **overrides) -> VapiResource:
    return VapiResource(**{"api_key": KEY, "base_url": url, "backoff_factor": 0.01, "backoff_jitter": 0.01,
                           **overrides})


def place(resource: VapiResource, key: str = "call:a:1"):
    return resource.create_call(idempotency_key=key, phone_number_id="pn-1", customer_number="+12125550101")


def test_is_a_shared_base_resource_with_its_timeouts_and_auth() -> None:
    resource = VapiResource(api_key="k", connect_timeout_s=2.0, timeout_s=9.0)
    assert isinstance(resource, HttpApiResource)
    session = resource._get_session()
    assert session.timeout == (2.0, 9.0)
    assert session.headers["Authorization"] == "Bearer k"
    # The session retries reads only: a POST /call that failed may still have placed the call.
    assert session.get_adapter("https://api.vapi.ai").max_retries.allowed_methods == frozenset({"GET"})


def test_a_read_is_retried_on_429_after_retry_after_and_counted(sandbox_url: str,
                                                                sandbox_control: SandboxControl) -> None:
    resource = vapi(sandbox_url)
    placed = place(resource)
    sandbox_control.set_faults(path_faults={"/call": {"fail_next": 1, "fail_next_status": 429, "retry_after_s": 1}})
    started = time.monotonic()
    found = resource.find_call(idempotency_key="call:a:1", phone_number_id="pn-1")
    assert found is not None and found.id == placed.id
    assert time.monotonic() - started >= 1.0  # Retry-After: 1 obeyed, not the 0.01 s backoff
    assert resource.retries_total == 1


@pytest.mark.parametrize("status", [429, 503])
def test_a_create_burst_is_retried_after_a_look_up_and_counted(sandbox_url: str, sandbox_control: SandboxControl,
                                                                status: int) -> None:
    sandbox_control.set_faults(path_faults={"/call": {"fail_next": 1, "fail_next_status": status, "retry_after_s": 0}})
    resource = vapi(sandbox_url)
    assert place(resource).status == "queued"
    requests_seen = sandbox_control.stats()["responses"]
    assert requests_seen["POST /call"] == {str(status): 1, "201": 1}
    assert requests_seen["GET /call"] == {"200": 1}  # the look-up before the second POST
    assert resource.retries_total == 1


def test_failures_keep_their_typed_errors(sandbox_url: str, sandbox_control: SandboxControl) -> None:
    with pytest.raises(VapiError) as refused:
        place(vapi(sandbox_url, api_key="wrong-key"))
    assert refused.value.status == 401 and not refused.value.retryable
    assert str(refused.value).startswith("vapi: HTTP 401 on POST /call")
    sandbox_control.set_faults(path_faults={"/call": {"fail_next": 10, "fail_next_status": 503}})
    with pytest.raises(VapiError) as down:
        place(vapi(sandbox_url, max_retries=1))
    assert down.value.retryable and str(down.value) == "vapi: HTTP 503 on POST /call"


def test_backoff_grows_is_capped_and_yields_to_a_longer_retry_after() -> None:
    assert [backoff_delay(n, factor=1, jitter=0, cap=5) for n in range(4)] == [1, 2, 4, 5]
    assert backoff_delay(0, factor=0.1, jitter=0, cap=5, retry_after="3") == 3
    assert backoff_delay(0, factor=0.1, jitter=0, cap=5, retry_after="300", retry_after_max=20) == 20
    assert backoff_delay(3, factor=1, jitter=0, cap=5, retry_after="1") == 5
