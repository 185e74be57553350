"""Environment switching in one place: which resources the code location gets.

`EQUITY_ENV=production` points the provider resources at the vendors with keys from the
environment (`PRODUCTION_SETTINGS`); a missing one stops the code location from loading, naming
the variable, instead of failing the 06:00 run. Anything else (the default, `local`) points them at
the sandbox: only a base URL and keys, from `EQUITY_SANDBOX_URL` (default http://127.0.0.1:8090) and
the same `EQUITY_SANDBOX_*` key variables the sandbox reads, with the sandbox's default keys. The
code location never imports the sandbox: it is a separate program that happens to speak the
vendors' wire. `EQUITY_VAPI_SERVER_URL` is where VAPI should post call messages (the gateway's
`/v1/webhooks/vapi`).
"""

import os

import dagster as dg

from .db.resources import PostgresResource
from .observe.alerts import AlertSink, AlertThresholds
from .security.consent import consent_secret
from .vendors.batchdata import BatchDataResource
from .vendors.instantly import InstantlyResource
from .vendors.melissa import MelissaResource
from .vendors.vapi import VapiResource

DEFAULT_SANDBOX_URL = "http://127.0.0.1:8090"

#: Key variable -> the key the sandbox accepts when that variable is unset.
SANDBOX_KEYS = {
    "EQUITY_SANDBOX_MELISSA_LICENSE_KEY": "sandbox-melissa-license",
    "EQUITY_SANDBOX_BATCHDATA_API_TOKEN": "sandbox-batchdata-token",
    "EQUITY_SANDBOX_INSTANTLY_API_KEY": "sandbox-instantly-key",
    "EQUITY_SANDBOX_VAPI_API_KEY": "sandbox-vapi-key",
}


def _sandbox_key(name: str) -> str:
    return os.environ.get(name, SANDBOX_KEYS[name])


#: What production cannot run without (the database URLs are checked by `db.settings`).
PRODUCTION_SETTINGS = (
    "EQUITY_DATABASE_URL",
    "EQUITY_CONSENT_SECRET",
    "EQUITY_CONSENT_BASE_URL",
    "EQUITY_CAMPAIGN_START",
    "MELISSA_LICENSE_KEY",
    "BATCHDATA_API_TOKEN",
    "INSTANTLY_API_KEY",
    "INSTANTLY_CAMPAIGN_ID",
    "VAPI_API_KEY",
    "VAPI_ASSISTANT_ID",
)


class MissingSettingError(RuntimeError):
    """A production setting is not in the environment (the message names it, never a value)."""


def require_production_settings() -> None:
    missing = [name for name in PRODUCTION_SETTINGS if not os.environ.get(name)]
    if missing:
        raise MissingSettingError(f"EQUITY_ENV=production but {', '.join(missing)} not set in the environment")
    consent_secret()  # too short a secret is as bad as none


def alert_sink() -> AlertSink:
    """Alerts post to `EQUITY_ALERT_WEBHOOK_URL` when set (else the log only); read as an env var,
    so the UI shows its name, never the URL (a webhook URL is a credential)."""
    url = dg.EnvVar("EQUITY_ALERT_WEBHOOK_URL") if os.environ.get("EQUITY_ALERT_WEBHOOK_URL") else None
    return AlertSink(webhook_url=url, thresholds=AlertThresholds.from_env())


def production_resources() -> dict[str, object]:
    require_production_settings()
    return {
        "postgres": PostgresResource(),
        "alerts": alert_sink(),
        "melissa": MelissaResource(license_key=dg.EnvVar("MELISSA_LICENSE_KEY")),
        "batchdata": BatchDataResource(api_token=dg.EnvVar("BATCHDATA_API_TOKEN")),
        "instantly": InstantlyResource(api_key=dg.EnvVar("INSTANTLY_API_KEY"),
                                       campaign_id=dg.EnvVar("INSTANTLY_CAMPAIGN_ID")),
        "vapi": VapiResource(api_key=dg.EnvVar("VAPI_API_KEY"), assistant_id=dg.EnvVar("VAPI_ASSISTANT_ID"),
                             server_url=os.environ.get("EQUITY_VAPI_SERVER_URL") or None),
    }


def sandbox_resources(base_url: str | None = None) -> dict[str, object]:
    url = base_url or os.environ.get("EQUITY_SANDBOX_URL", DEFAULT_SANDBOX_URL)
    return {
        "postgres": PostgresResource(),
        "alerts": alert_sink(),
        "melissa": MelissaResource(license_key=_sandbox_key("EQUITY_SANDBOX_MELISSA_LICENSE_KEY"), base_url=url),
        "batchdata": BatchDataResource(api_token=_sandbox_key("EQUITY_SANDBOX_BATCHDATA_API_TOKEN"), base_url=url),
        "instantly": InstantlyResource(api_key=_sandbox_key("EQUITY_SANDBOX_INSTANTLY_API_KEY"), base_url=url,
                                       campaign_id=os.environ.get("INSTANTLY_CAMPAIGN_ID", "sandbox-campaign")),
        "vapi": VapiResource(api_key=_sandbox_key("EQUITY_SANDBOX_VAPI_API_KEY"), base_url=url,
                             server_url=os.environ.get("EQUITY_VAPI_SERVER_URL") or None),
    }


def build_resources() -> dict[str, object]:
    """Resources for the current environment (`EQUITY_ENV`: local | production)."""
    if os.environ.get("EQUITY_ENV", "local") == "production":
        return production_resources()
    return sandbox_resources()
