"""The shared retrying session: 5xx/429 retried, Retry-After honoured, retries counted, clear errors."""

from __future__ import annotations

import socket
import time

import pytest

from equity_assets.sandbox import VENDOR_PATHS, SandboxConfig, SandboxControl
from equity_assets.vendors.http import (
    ProviderHTTPError,
    ProviderUnavailableError,
    build_session,
    post_json,
    retries_spent,
)

MELISSA = VENDOR_PATHS["melissa"]
RECORD = {"RecordID": "1", "AddressLine1": "1 Main St", "City": "Austin", "State": "TX"}
BODY = {"CustomerID": SandboxConfig().melissa_license_key, "Records": [RECORD]}


def fast_session(total_retries: int = 3, timeout: tuple[float, float] = (1.0, 5.0)):
    return build_session(total_retries=total_retries, backoff_factor=0.01, backoff_jitter=0.01, timeout=timeout)


def test_5xx_then_success_counts_the_retries(sandbox_url: str, sandbox_control: SandboxControl) -> None:
    sandbox_control.set_faults(fail_next=2)
    session = fast_session()
    response = session.post(sandbox_url + MELISSA, json=BODY)
    assert response.status_code == 200
    assert retries_spent(response) == 2
    assert session.retry_counter.value == 2
    assert sandbox_control.stats()["requests"][f"POST {MELISSA}"] == 3


def test_retry_after_is_honoured(sandbox_url: str, sandbox_control: SandboxControl) -> None:
    sandbox_control.set_faults(fail_next=1, fail_next_status=429, retry_after_s=1)
    session = fast_session()
    started = time.monotonic()
    response = session.post(sandbox_url + MELISSA, json=BODY)
    assert response.status_code == 200
    assert time.monotonic() - started >= 0.95  # waited for Retry-After, not the 0.01 s backoff
    assert session.retry_counter.value == 1


def test_5xx_forever_raises_after_the_configured_retries(sandbox_url: str, sandbox_control: SandboxControl) -> None:
    sandbox_control.set_faults(error_rate=1.0)
    session = fast_session(total_retries=3)
    with pytest.raises(ProviderHTTPError) as failure:
        post_json(session, sandbox_url + MELISSA, BODY, provider="melissa")
    assert failure.value.status_code >= 500
    assert failure.value.retries == 3
    assert "after 3 retries" in str(failure.value)
    assert session.retry_counter.value == 3
    assert sandbox_control.stats()["requests"][f"POST {MELISSA}"] == 4  # first try + 3 retries


def test_unreachable_service_raises_unavailable() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    session = fast_session(total_retries=2)
    with pytest.raises(ProviderUnavailableError) as failure:
        post_json(session, f"http://127.0.0.1:{port}/x", {}, provider="test")
    assert failure.value.retries == 2
    assert session.retry_counter.value == 2


def test_read_timeouts_are_retried_then_reported(sandbox_url: str, sandbox_control: SandboxControl) -> None:
    sandbox_control.set_faults(timeout_rate=1.0, timeout_s=0.6)
    session = fast_session(total_retries=1, timeout=(1.0, 0.2))
    with pytest.raises(ProviderUnavailableError) as failure:
        post_json(session, sandbox_url + MELISSA, BODY, provider="melissa")
    assert failure.value.retries == 1
    assert sandbox_control.stats()["injected_timeouts"] == 2
