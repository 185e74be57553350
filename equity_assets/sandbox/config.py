"""Sandbox configuration: credentials it accepts, its seed, and the fault knobs.

Every field can also come from the environment as ``EQUITY_SANDBOX_<FIELD>`` (upper case), e.g.
``EQUITY_SANDBOX_LATENCY_MS=50``; ``EQUITY_SANDBOX_PATH_FAULTS`` takes JSON
(``{"/api/v2/leads/add": {"error_rate": 0.2}}``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

ENV_PREFIX = "EQUITY_SANDBOX_"


class FaultKnobs(BaseModel):
    """How badly a path misbehaves. Rates are probabilities per request, drawn from the seeded RNG.

    Order per request: latency, then the ``fail_next`` counter, then timeout, 5xx and 429 draws.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    latency_ms: float = Field(default=0.0, ge=0, description="Added latency per request (async sleep).")
    error_rate: float = Field(default=0.0, ge=0, le=1, description="Share of requests answered 500/502/503.")
    throttle_rate: float = Field(default=0.0, ge=0, le=1, description="Share of requests answered 429.")
    retry_after_s: int = Field(default=1, ge=0, description="Retry-After (whole seconds) on injected 429s.")
    timeout_rate: float = Field(default=0.0, ge=0, le=1, description="Share of requests that hang.")
    timeout_s: float = Field(default=35.0, ge=0, description="How long a hanging request sleeps before a 504.")
    fail_next: int = Field(default=0, ge=0, description="The next N requests fail, deterministically.")
    fail_next_status: int = Field(
        default=503, description="Status of the fail_next failures: a 5xx, or 429 (sent with Retry-After)."
    )

    @field_validator("fail_next_status")
    @classmethod
    def _fail_status_is_retryable(cls, status: int) -> int:
        if status != 429 and not 500 <= status <= 599:
            raise ValueError("fail_next_status must be 429 or a 5xx status")
        return status


class SandboxConfig(BaseModel):
    """Everything the sandbox needs at start; faults can be changed later via ``POST /_sandbox/faults``."""

    model_config = ConfigDict(extra="forbid")

    seed: int = Field(default=20240601, description="Seed of every deterministic outcome and fault draw.")
    melissa_license_key: str = "sandbox-melissa-license"
    batchdata_api_token: str = "sandbox-batchdata-token"
    instantly_api_key: str = "sandbox-instantly-key"
    melissa_max_records: int = Field(default=100, ge=1, description="Records per Personator request before GE03.")
    batchdata_messy_email_rate: float = Field(default=0.0, ge=0, le=1, description="Share of skip-trace emails "
                                              "padded with blanks or with a blank inside.")
    instantly_rate_limit_per_s: int = Field(default=100, ge=1, description="Instantly workspace limit per second.")
    instantly_rate_limit_per_min: int = Field(default=6000, ge=1, description="Instantly workspace limit per minute.")
    instantly_plan_leads: int = Field(default=1_000_000, ge=0, description="Lead quota reported as remaining_in_plan.")
    vapi_api_key: str = "sandbox-vapi-key"
    vapi_server_url: str | None = Field(default=None, description="Where VAPI messages go when a call names none.")
    vapi_webhook_secret: str = Field(default="sandbox-vapi-webhook-secret", description="Credential VAPI sends us.")
    vapi_webhook_auth: Literal["bearer", "hmac"] = Field(default="bearer", description="How VAPI messages are signed.")
    vapi_answer_delay_s: float = Field(default=0.0, ge=0, description="Seconds POST /call waits before answering, "
                                       "after the call is placed (a slow answer the client may give up on).")
    vapi_report_delay_s: float = Field(default=0.2, ge=0, description="Seconds from POST /call to its messages.")
    vapi_lost_rate: float = Field(default=0.0, ge=0, le=1, description="Share of calls whose report is never sent.")
    vapi_duplicate_rate: float = Field(default=0.0, ge=0, le=1, description="Share of reports sent twice.")
    vapi_out_of_order_rate: float = Field(default=0.0, ge=0, le=1,
                                          description="Share of reports sent before their status updates.")
    faults: FaultKnobs = Field(default_factory=FaultKnobs, description="Knobs for every vendor path.")
    path_faults: dict[str, FaultKnobs] = Field(
        default_factory=dict, description="Per-path knobs; replace the global knobs for that exact path."
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SandboxConfig:
        """Read ``EQUITY_SANDBOX_*`` variables; unset ones keep their defaults."""
        env = os.environ if environ is None else environ
        top: dict[str, object] = {}
        for name in cls.model_fields:
            if name in ("faults", "path_faults"):
                continue
            value = env.get(ENV_PREFIX + name.upper())
            if value is not None:
                top[name] = value
        knobs = {
            name: env[ENV_PREFIX + name.upper()]
            for name in FaultKnobs.model_fields
            if ENV_PREFIX + name.upper() in env
        }
        path_faults = env.get(ENV_PREFIX + "PATH_FAULTS")
        return cls.model_validate(
            {
                **top,
                "faults": knobs,
                "path_faults": json.loads(path_faults) if path_faults else {},
            }
        )
