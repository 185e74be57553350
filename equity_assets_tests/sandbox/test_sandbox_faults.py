"""Fault knobs: deterministic failures, seeded randomness, per-path overrides, latency, hangs."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from equity_assets.sandbox import VENDOR_PATHS, FaultKnobs, SandboxConfig, SandboxControl

MELISSA = VENDOR_PATHS["melissa"]
INSTANTLY = VENDOR_PATHS["instantly"]
CONFIG = SandboxConfig()


def melissa_call(url: str, *, timeout: float = 10) -> requests.Response:
    record = {"RecordID": "1", "AddressLine1": "1 Main St", "City": "Austin", "State": "TX"}
    body = {"CustomerID": CONFIG.melissa_license_key, "Records": [record]}
    return requests.post(url + MELISSA, json=body, timeout=timeout)


def instantly_call(url: str) -> requests.Response:
    body = {"campaign_id": "c", "leads": [{"email": "a@example.com"}]}
    return requests.post(url + INSTANTLY, json=body, headers={"Authorization": f"Bearer {CONFIG.instantly_api_key}"}, timeout=10)


@pytest.mark.parametrize("sandbox_config", [SandboxConfig(faults=FaultKnobs(fail_next=2))], indirect=True)
def test_fail_next_fails_exactly_n_requests(sandbox_url: str, sandbox_control: SandboxControl) -> None:
    assert [melissa_call(sandbox_url).status_code for _ in range(3)] == [503, 503, 200]
    stats = sandbox_control.stats()
    assert stats["injected_5xx"] == 2
    assert stats["responses"][f"POST {MELISSA}"] == {"503": 2, "200": 1}


def test_fail_next_can_throttle_with_retry_after(sandbox_url: str, sandbox_control: SandboxControl) -> None:
    sandbox_control.set_faults(fail_next=1, fail_next_status=429, retry_after_s=2)
    throttled = melissa_call(sandbox_url)
    assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "2"
    assert melissa_call(sandbox_url).status_code == 200
    assert sandbox_control.stats()["injected_429"] == 1


def test_random_faults_follow_the_seed(start_sandbox) -> None:
    config = SandboxConfig(seed=99, faults=FaultKnobs(error_rate=0.5))
    urls = [start_sandbox(config), start_sandbox(config)]
    runs = [[melissa_call(url).status_code for _ in range(20)] for url in urls]
    assert runs[0] == runs[1]
    assert 200 in runs[0] and any(status >= 500 for status in runs[0])


def test_path_override_replaces_global_knobs_for_that_path(sandbox_url: str, sandbox_control: SandboxControl) -> None:
    sandbox_control.set_faults(path_faults={INSTANTLY: {"error_rate": 1.0}})
    assert instantly_call(sandbox_url).status_code >= 500
    assert melissa_call(sandbox_url).status_code == 200
    sandbox_control.set_faults(path_faults={INSTANTLY: None})
    assert instantly_call(sandbox_url).status_code == 200
    assert sandbox_control.faults()["path_faults"] == {}


def test_bad_fault_settings_are_rejected(sandbox_url: str) -> None:
    response = requests.post(sandbox_url + "/_sandbox/faults", json={"error_rate": 2}, timeout=10)
    assert response.status_code == 400
    response = requests.post(sandbox_url + "/_sandbox/faults", json={"fail_next_status": 404}, timeout=10)
    assert response.status_code == 400


@pytest.mark.parametrize("sandbox_config", [SandboxConfig(faults=FaultKnobs(latency_ms=300))], indirect=True)
def test_latency_lets_concurrent_requests_overlap(sandbox_url: str, sandbox_control: SandboxControl) -> None:
    with ThreadPoolExecutor(max_workers=6) as pool:
        statuses = list(pool.map(lambda _: melissa_call(sandbox_url).status_code, range(6)))
    assert statuses == [200] * 6
    assert sandbox_control.stats()["max_in_flight"][f"POST {MELISSA}"] >= 3


@pytest.mark.parametrize("sandbox_config", [SandboxConfig(faults=FaultKnobs(timeout_rate=1.0, timeout_s=1.0))], indirect=True)
def test_timeout_fault_outlasts_the_client(sandbox_url: str, sandbox_control: SandboxControl) -> None:
    with pytest.raises(requests.ReadTimeout):
        melissa_call(sandbox_url, timeout=0.2)
    assert sandbox_control.stats()["injected_timeouts"] == 1


def test_config_reads_environment() -> None:
    env = {
        "EQUITY_SANDBOX_SEED": "5",
        "EQUITY_SANDBOX_LATENCY_MS": "50",
        "EQUITY_SANDBOX_ERROR_RATE": "0.1",
        "EQUITY_SANDBOX_FAIL_NEXT": "3",
        "EQUITY_SANDBOX_INSTANTLY_RATE_LIMIT_PER_S": "10",
        "EQUITY_SANDBOX_PATH_FAULTS": '{"/api/v2/leads/add": {"throttle_rate": 0.5}}',
    }
    config = SandboxConfig.from_env(env)
    assert config.seed == 5 and config.instantly_rate_limit_per_s == 10
    assert config.faults == FaultKnobs(latency_ms=50, error_rate=0.1, fail_next=3)
    assert config.path_faults["/api/v2/leads/add"].throttle_rate == 0.5
    assert SandboxConfig.from_env({}) == SandboxConfig()
