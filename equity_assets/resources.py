"""Environment switching in one place: which resources the code location gets.

`EQUITY_ENV=production` points the provider resources at the vendors with keys from the
environment (`MELISSA_LICENSE_KEY`, `BATCHDATA_API_TOKEN`, `INSTANTLY_API_KEY`,
`INSTANTLY_CAMPAIGN_ID`, `VAPI_API_KEY`, `VAPI_ASSISTANT_ID`); anything else (the default, `local`)
points them at the sandbox (`EQUITY_SANDBOX_URL`, default http://127.0.0.1:8090) with the sandbox's
own keys. `EQUITY_VAPI_SERVER_URL` is where VAPI should post call messages (the gateway's
`/v1/webhooks/vapi`).
"""

import os

import dagster as dg

from .campaign.resources import InstantlyResource
from .db.resources import PostgresResource
from .sandbox.config import SandboxConfig
from .vendors.vapi import VapiResource
from .verify.resources import BatchDataResource, MelissaResource

DEFAULT_SANDBOX_URL = "http://127.0.0.1:8090"


def production_resources() -> dict[str, object]:
    return {
        "postgres": PostgresResource(),
        "melissa": MelissaResource(license_key=dg.EnvVar("MELISSA_LICENSE_KEY")),
        "batchdata": BatchDataResource(api_token=dg.EnvVar("BATCHDATA_API_TOKEN")),
        "instantly": InstantlyResource(api_key=dg.EnvVar("INSTANTLY_API_KEY"),
                                       campaign_id=dg.EnvVar("INSTANTLY_CAMPAIGN_ID")),
        "vapi": VapiResource(api_key=dg.EnvVar("VAPI_API_KEY"), assistant_id=dg.EnvVar("VAPI_ASSISTANT_ID"),
                             server_url=os.environ.get("EQUITY_VAPI_SERVER_URL") or None),
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
        "vapi": VapiResource(api_key=keys.vapi_api_key, base_url=url,
                             server_url=os.environ.get("EQUITY_VAPI_SERVER_URL") or None),
    }


def build_resources() -> dict[str, object]:
    """Resources for the current environment (`EQUITY_ENV`: local | production)."""
    if os.environ.get("EQUITY_ENV", "local") == "production":
        return production_resources()
    return sandbox_resources()
