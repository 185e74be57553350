"""VAPI (AI voice calls) as a Dagster resource: place a call, look calls up.

``POST /call`` answers 201 with a Call object. Our own data rides in
``assistantOverrides.metadata`` (VAPI has no top-level metadata), including an idempotency key.

Placing a call is not safe to repeat blindly: a request that timed out, or answered 5xx, may
still have placed the call. So :meth:`VapiResource.create_call` never lets the HTTP layer retry
the POST; before each retry it lists the calls recently made from the same number and returns the
one carrying our idempotency key if there is one. The resource is built on the shared vendor
HTTP base: its session (timeouts, auth header, retry counter) retries reads (GET) on 429/5xx by
itself, ``Retry-After`` honoured; a create's 429/5xx/timeout is retried by ``create_call`` with
the same backoff rule (exponential, jitter, ``Retry-After`` wins).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, ClassVar

import requests
from pydantic import Field

from equity_assets.vendors.http import RETRY_STATUSES, HttpApiResource

VAPI_BASE_URL = "https://api.vapi.ai"
IDEMPOTENCY_KEY = "idempotency_key"


class VapiError(RuntimeError):
    """A VAPI call failed; ``status`` is the HTTP status (None: no answer), ``retryable`` says whether
    a later run may try again."""

    def __init__(self, message: str, *, status: int | None = None, retryable: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable


@dataclass(frozen=True)
class VapiCall:
    """The fields of a VAPI Call object we use."""

    id: str
    status: str
    phone_number_id: str | None
    customer_number: str | None
    metadata: dict[str, Any]
    ended_reason: str | None = None
    created_at: str | None = None
    raw: dict[str, Any] | None = None  # the whole Call object, for what this record does not type

    @classmethod
    def from_wire(cls, body: Any) -> VapiCall:
        if not isinstance(body, dict) or not isinstance(body.get("id"), str):
            raise VapiError("VAPI answered without a call id")
        overrides = body.get("assistantOverrides") if isinstance(body.get("assistantOverrides"), dict) else {}
        customer = body.get("customer") if isinstance(body.get("customer"), dict) else {}
        return cls(id=body["id"], status=str(body.get("status") or "queued"),
                   phone_number_id=body.get("phoneNumberId"), customer_number=customer.get("number"),
                   metadata=dict(overrides.get("metadata") or {}), ended_reason=body.get("endedReason"),
                   created_at=body.get("createdAt"), raw=body)


class VapiResource(HttpApiResource):
    """VAPI's REST API: ``POST /call`` (idempotent by our key), ``GET /call`` and ``GET /call/{id}``."""

    provider: ClassVar[str] = "vapi"
    #: Only reads are retried by the session; a create is retried by create_call after a look-up.
    retry_methods: ClassVar[frozenset[str]] = frozenset({"GET"})

    api_key: str = Field(description="VAPI private key (Bearer); pass dg.EnvVar('VAPI_API_KEY').")
    assistant_id: str = Field(default="equity-assistant", description="The assistant that makes our calls.")
    base_url: str = Field(default=VAPI_BASE_URL, description="VAPI API root URL.")
    server_url: str | None = Field(default=None, description="Where VAPI posts status and end-of-call reports "
                                   "(our gateway's /v1/webhooks/vapi); None: the assistant's own setting.")
    timeout_s: float = Field(default=15.0, gt=0, description="Read timeout per request, seconds.")
    max_retries: int = Field(default=4, ge=0, description="Retries per request on 429/5xx/timeouts.")
    backoff_max_s: float = Field(default=20.0, ge=0, description="Cap on one backoff sleep, seconds.")
    retry_after_max_s: int = Field(default=20, ge=0, description="Cap on an obeyed Retry-After, seconds.")

    def _session_headers(self) -> Mapping[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    # ----------------------------------------------------------------------------------- calls

    def create_call(self, *, idempotency_key: str, phone_number_id: str, customer_number: str,
                    customer_name: str | None = None, metadata: dict[str, Any] | None = None,
                    variable_values: dict[str, Any] | None = None, resume: bool = False) -> VapiCall:
        """Place one outbound call; at most one call per ``idempotency_key`` however often it is retried.

        ``resume``: an earlier process may have sent this request already — look it up before the
        first POST too.
        """
        overrides: dict[str, Any] = {
            "metadata": {**(metadata or {}), IDEMPOTENCY_KEY: idempotency_key},
            "variableValues": dict(variable_values or {}),
        }
        if self.server_url:
            overrides["server"] = {"url": self.server_url}
        customer = {"number": customer_number, **({"name": customer_name} if customer_name else {})}
        body = {"assistantId": self.assistant_id, "phoneNumberId": phone_number_id, "customer": customer,
                "assistantOverrides": overrides}
        since = datetime.now(timezone.utc) - timedelta(hours=3)
        last_error: VapiError | None = None
        for attempt in range(self.max_retries + 1):
            if attempt or resume:
                existing = self.find_call(idempotency_key=idempotency_key, phone_number_id=phone_number_id,
                                          created_after=since)
                if existing is not None:
                    return existing
            try:
                response = self._get_session().post(self._url("/call"), json=body)
            except requests.RequestException as exc:  # the call may or may not have been placed
                last_error = VapiError(f"vapi: {type(exc).__name__} on POST /call", retryable=True)
                self._sleep(attempt, None)
                continue
            if response.status_code in (200, 201):
                return VapiCall.from_wire(_json(response))
            if response.status_code in RETRY_STATUSES:
                last_error = VapiError(f"vapi: HTTP {response.status_code} on POST /call",
                                       status=response.status_code, retryable=True)
                self._sleep(attempt, response.headers.get("Retry-After"))
                continue
            raise VapiError(f"vapi: HTTP {response.status_code} on POST /call: {response.text[:200]}",
                            status=response.status_code)
        existing = self.find_call(idempotency_key=idempotency_key, phone_number_id=phone_number_id,
                                  created_after=since)
        if existing is not None:
            return existing
        assert last_error is not None
        raise last_error

    def find_call(self, *, idempotency_key: str, phone_number_id: str,
                  created_after: datetime | None = None) -> VapiCall | None:
        """The call we placed with ``idempotency_key`` from this number, if VAPI has one."""
        params: dict[str, Any] = {"phoneNumberId": phone_number_id, "limit": 1000}
        if created_after is not None:
            params["createdAtGt"] = created_after.isoformat()
        try:
            response = self._get_session().get(self._url("/call"), params=params)
        except requests.RequestException:
            return None  # cannot tell: the caller retries the create, whose next look-up may answer
        if response.status_code != 200:
            return None
        for item in _json(response) or []:
            call = VapiCall.from_wire(item)
            if call.metadata.get(IDEMPOTENCY_KEY) == idempotency_key:
                return call
        return None

    def get_call(self, call_id: str) -> VapiCall:
        """One call as VAPI has it now (status, endedReason, analysis, artifact …)."""
        try:
            response = self._get_session().get(self._url(f"/call/{call_id}"))
        except requests.RequestException as exc:
            raise VapiError(f"vapi: {type(exc).__name__} on GET /call/{{id}}", retryable=True) from None
        if response.status_code != 200:
            raise VapiError(f"vapi: HTTP {response.status_code} on GET /call/{{id}}", status=response.status_code)
        return VapiCall.from_wire(_json(response))

    def _sleep(self, attempt: int, retry_after: str | None) -> None:
        if attempt < self.max_retries:
            time.sleep(self._backoff(attempt, retry_after))


def _json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        raise VapiError(f"vapi: non-JSON body (HTTP {response.status_code})") from None
