"""Environment switching in one place: which resources the code location gets.

`EQUITY_ENV=production` points the provider resources at the vendors with keys from the
environment (`PRODUCTION_SETTINGS`); a missing one stops the code location from loading, naming
the variable, instead of failing the 06:00 run. Anything else (the default, `local`) points them
at the sandbox (`EQUITY_SANDBOX_URL`, default http://127.0.0.1:8090) with the sandbox's own keys.
"""

import os

import dagster as dg

from .campaign.resources import InstantlyResource
from .db.resources import PostgresResource
from .sandbox.config import SandboxConfig
from .security.consent import consent_secret
from .verify.resources import BatchDataResource, MelissaResource

DEFAULT_SANDBOX_URL = "http://127.0.0.1:8090"

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
)


class MissingSettingError(RuntimeError):
    """A production setting is not in the environment (the message names it, never a value)."""


def require_production_settings() -> None:
    missing = [name for name in PRODUCTION_SETTINGS if not os.environ.get(name)]
    if missing:
        raise MissingSettingError(f"EQUITY_ENV=production but {', '.join(missing)} not set in the environment")
    consent_secret()  # too short a secret is as bad as none


def production_resources() -> dict[str, object]:
    require_production_settings()
    return {
        "postgres": PostgresResource(),
        "melissa": MelissaResource(license_key=dg.EnvVar("MELISSA_LICENSE_KEY")),
        "batchdata": BatchDataResource(api_token=dg.EnvVar("BATCHDATA_API_TOKEN")),
        "instantly": InstantlyResource(api_key=dg.EnvVar("INSTANTLY_API_KEY"),
                                       campaign_id=dg.EnvVar("INSTANTLY_CAMPAIGN_ID")),
    }


def sandbox_resources(base_url: str | None = None) -> dict[str, object]:
    url = base_url or os.environ.get("EQUITY_SANDBOX_URL", DEFAULT_SANDBOX_URL)
    keys = SandboxConfig()
    return {
        "postgres": PostgresResource(),
        "melissa": MelissaResource(license_key=keys.melissa_license_key, base_url=url),
        "batchdata": BatchDataResource(api_token=keys.batchdata_api_token, base_url=url),
        "instantly": InstantlyResource(api_key=keys.instantly_api_key, base_url=url,
                                       campaign_id=os.environ.get("INSTANTLY_CAMPAIGN_ID", "sandbox-campaign")),
    }


def build_resources() -> dict[str, object]:
    """Resources for the current environment (`EQUITY_ENV`: local | production)."""
    if os.environ.get("EQUITY_ENV", "local") == "production":
        return production_resources()
    return sandbox_resources()
