"""The code location's local mode: base URL and keys from env vars, matching what the sandbox accepts."""

from equity_assets.resources import SANDBOX_KEYS, sandbox_resources
from equity_assets.sandbox import SandboxConfig
from equity_assets.sandbox.config import ENV_PREFIX


def test_default_keys_are_the_ones_the_sandbox_accepts() -> None:
    defaults = SandboxConfig()
    for variable, key in SANDBOX_KEYS.items():
        field = variable.removeprefix(ENV_PREFIX).lower()
        assert getattr(defaults, field) == key, variable


def test_keys_and_url_come_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("EQUITY_SANDBOX_URL", "http://127.0.0.1:9999")
    monkeypatch.setenv("EQUITY_SANDBOX_MELISSA_LICENSE_KEY", "other-license")
    monkeypatch.setenv("EQUITY_SANDBOX_INSTANTLY_API_KEY", "other-key")
    resources = sandbox_resources()
    assert resources["melissa"].license_key == "other-license"
    assert resources["melissa"].base_url == "http://127.0.0.1:9999"
    assert resources["instantly"].api_key == "other-key"
    assert resources["batchdata"].api_token == SANDBOX_KEYS["EQUITY_SANDBOX_BATCHDATA_API_TOKEN"]
