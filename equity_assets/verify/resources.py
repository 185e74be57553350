"""Verification providers as Dagster resources: Melissa Personator and BatchData skip trace.

Both send batches of at most 100 over a shared retrying session, a few batches at a time
(``max_concurrency`` threads), and return typed records from :mod:`equity_assets.verify.models`
in input order. Assets that call them should declare ``pool=MelissaResource.pool`` (or
``BatchDataResource.pool``) so Dagster caps concurrent use of each vendor across runs.

Secrets come from the environment at the definitions level, e.g.
``MelissaResource(license_key=dg.EnvVar("MELISSA_LICENSE_KEY"))``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from pydantic import Field

from equity_assets.http import HttpApiResource, ProviderError, ProviderResponseError, map_in_threads
from equity_assets.verify.models import (
    LICENSE_ERROR_CODES,
    TOO_MANY_RECORDS_CODE,
    ContactInput,
    PersonatorResult,
    SkipTraceInput,
    SkipTraceResult,
    parse_result_codes,
)

MELISSA_BASE_URL = "https://personator.melissadata.net"
MELISSA_PATH = "/v3/WEB/ContactVerify/doContactVerify"
MELISSA_MAX_RECORDS = 100
BATCHDATA_BASE_URL = "https://api.batchdata.com"
BATCHDATA_PATH = "/api/v3/property/skip-trace"
BATCHDATA_MAX_REQUESTS = 100


class MelissaTransmissionError(ProviderError):
    """Personator refused the whole request (``TransmissionResults`` GE*/SE* codes)."""

    def __init__(self, message: str, *, codes: tuple[str, ...]) -> None:
        super().__init__(message, provider="melissa")
        self.codes = codes


class MelissaLicenseError(MelissaTransmissionError):
    """License key empty, invalid or disabled (GE04/GE05/GE06): nothing will work until it is fixed."""


class MelissaResource(HttpApiResource):
    """Melissa Personator Consumer: address/phone/email verification, MAK, date of birth."""

    provider: ClassVar[str] = "melissa"
    #: Dagster concurrency pool for assets calling this resource.
    pool: ClassVar[str] = "melissa"

    license_key: str = Field(description="Melissa license key (CustomerID); pass dg.EnvVar(...).")
    base_url: str = Field(default=MELISSA_BASE_URL, description="Personator root URL.")
    batch_size: int = Field(
        default=MELISSA_MAX_RECORDS, ge=1, le=MELISSA_MAX_RECORDS, description="Records per request."
    )
    max_concurrency: int = Field(default=4, ge=1, le=64, description="Requests in flight at once.")
    actions: str = Field(default="Check,Verify", description="Personator Actions.")
    columns: str = Field(
        default="GrpAddressDetails,GrpCensus,GrpGeocode,GrpDemographicBasic",
        description="Personator output column groups (GrpDemographicBasic gives DateOfBirth).",
    )

    def verify_contacts(self, *, records: Sequence[ContactInput]) -> list[PersonatorResult]:
        """Verify ``records``; one :class:`PersonatorResult` per input, same order, same ``record_id``.

        Raises :class:`MelissaLicenseError` / :class:`MelissaTransmissionError` when Melissa refuses
        the request, :class:`~equity_assets.http.ProviderError` subclasses on HTTP/transport failure.
        """
        if not records:
            return []
        self._get_session()  # open the pool before threads share it
        size = self.batch_size
        batches = [records[start : start + size] for start in range(0, len(records), size)]
        verified = map_in_threads(self._verify_batch, batches, max_workers=self.max_concurrency)
        return [result for batch in verified for result in batch]

    def _connection_pool_size(self) -> int:
        return max(4, self.max_concurrency)

    def _verify_batch(self, batch: Sequence[ContactInput]) -> list[PersonatorResult]:
        """One request; halves the batch and tries again if Melissa says it is too big (GE03)."""
        body = self._post(MELISSA_PATH, self._request_body(batch))
        if not isinstance(body, Mapping):
            raise ProviderResponseError("melissa: response is not a JSON object", provider=self.provider)
        codes = parse_result_codes(body.get("TransmissionResults"))
        if TOO_MANY_RECORDS_CODE in codes and len(batch) > 1:
            middle = len(batch) // 2
            return self._verify_batch(batch[:middle]) + self._verify_batch(batch[middle:])
        if codes:
            error = MelissaLicenseError if LICENSE_ERROR_CODES.intersection(codes) else MelissaTransmissionError
            raise error(f"melissa refused the request: TransmissionResults={','.join(codes)}", codes=codes)
        return _results_in_input_order(batch, body.get("Records"))

    def _request_body(self, batch: Sequence[ContactInput]) -> dict[str, Any]:
        # Wire ids are positions in the batch: caller ids may repeat or be long.
        return {
            "TransmissionReference": "",
            "CustomerID": self.license_key,
            "Actions": self.actions,
            "Columns": self.columns,
            "Options": "",
            "Records": [contact.to_wire(str(position)) for position, contact in enumerate(batch)],
        }


def _results_in_input_order(batch: Sequence[ContactInput], raw_records: Any) -> list[PersonatorResult]:
    """Match response records to inputs by wire ``RecordID`` and restore the caller's ids."""
    by_wire_id = {
        str(record.get("RecordID", "")).strip(): record
        for record in (raw_records if isinstance(raw_records, list) else [])
        if isinstance(record, Mapping)
    }
    results = []
    for position, contact in enumerate(batch):
        record = by_wire_id.get(str(position))
        if record is None:
            raise ProviderResponseError(
                f"melissa: response lacks record {position} of {len(batch)}", provider="melissa"
            )
        results.append(PersonatorResult.from_wire(record, record_id=contact.record_id))
    return results


class BatchDataResource(HttpApiResource):
    """BatchData property skip trace: owners, phones (DNC/TCPA flags), emails, litigator/deceased."""

    provider: ClassVar[str] = "batchdata"
    #: Dagster concurrency pool for assets calling this resource.
    pool: ClassVar[str] = "batchdata"

    api_token: str = Field(description="BatchData API token (Bearer); pass dg.EnvVar(...).")
    base_url: str = Field(default=BATCHDATA_BASE_URL, description="BatchData API root URL.")
    batch_size: int = Field(
        default=BATCHDATA_MAX_REQUESTS, ge=1, le=BATCHDATA_MAX_REQUESTS, description="Requests per call."
    )
    max_concurrency: int = Field(default=4, ge=1, le=64, description="Calls in flight at once.")
    include_tcpa_blacklisted_phones: bool = Field(
        default=True,
        description="Return TCPA-blacklisted phones flagged tcpa=true (so the pipeline can record and suppress them).",
    )

    def skip_trace(self, *, requests: Sequence[SkipTraceInput]) -> list[SkipTraceResult]:
        """Skip-trace ``requests``; one :class:`SkipTraceResult` per input, same order and ``request_id``.

        Raises :class:`~equity_assets.http.ProviderAuthError` on a bad token and other
        :class:`~equity_assets.http.ProviderError` subclasses on HTTP/transport failure.
        """
        if not requests:
            return []
        self._get_session()  # open the pool before threads share it
        size = self.batch_size
        batches = [requests[start : start + size] for start in range(0, len(requests), size)]
        traced = map_in_threads(self._trace_batch, batches, max_workers=self.max_concurrency)
        return [result for batch in traced for result in batch]

    def _connection_pool_size(self) -> int:
        return max(4, self.max_concurrency)

    def _trace_batch(self, batch: Sequence[SkipTraceInput]) -> list[SkipTraceResult]:
        """One call; results matched back to inputs by wire ``requestId``."""
        payload = {
            # Wire ids are positions in the batch: caller ids may repeat.
            "requests": [request.to_wire(str(position)) for position, request in enumerate(batch)],
            "options": {"includeTCPABlacklistedPhones": self.include_tcpa_blacklisted_phones},
        }
        body = self._post(BATCHDATA_PATH, payload, headers={"Authorization": f"Bearer {self.api_token}"})
        result = body.get("result") if isinstance(body, Mapping) else None
        data = result.get("data") if isinstance(result, Mapping) else None
        if not isinstance(data, list):
            raise ProviderResponseError("batchdata: response has no result.data array", provider=self.provider)
        by_wire_id = {
            str(item.get("input", {}).get("requestId", "")): item
            for item in data
            if isinstance(item, Mapping) and isinstance(item.get("input"), Mapping)
        }
        results = []
        for position, request in enumerate(batch):
            item = by_wire_id.get(str(position))
            if item is None:
                raise ProviderResponseError(
                    f"batchdata: response lacks request {position} of {len(batch)}", provider=self.provider
                )
            results.append(SkipTraceResult.from_wire(item, request_id=request.request_id))
        return results
