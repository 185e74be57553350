"""BatchData property skip trace: its wire records and its Dagster resource.

Owners, phones (DNC/TCPA flags), emails, litigator/deceased flags. Missing safety flags count as
set (fail closed). Batches of at most 100 requests, a few calls at a time, results in input order
and matched back by wire ``requestId``. Assets that call it declare ``pool=BatchDataResource.pool``.

Secrets come from the environment at the definitions level, e.g.
``BatchDataResource(api_token=dg.EnvVar("BATCHDATA_API_TOKEN"))``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import Field

from equity_assets.vendors.http import BatchingApiResource, ProviderResponseError
from equity_assets.vendors.wire import as_list, as_mapping, blank_to_none, flag, leading_year, to_int

BATCHDATA_BASE_URL = "https://api.batchdata.com"
BATCHDATA_PATH = "/api/v3/property/skip-trace"
BATCHDATA_MAX_REQUESTS = 100


@dataclass(frozen=True, slots=True)
class SkipTraceInput:
    """One property to skip-trace, by address or by APN + county + state."""

    request_id: str
    street: str | None = None
    city: str | None = None
    state: str | None = None
    zip: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    apn: str | None = None
    county: str | None = None

    def to_wire(self, wire_id: str) -> dict[str, Any]:
        """The BatchData request object."""
        request: dict[str, Any] = {"requestId": wire_id}
        if self.street:
            request["propertyAddress"] = {
                "street": self.street,
                "city": self.city or "",
                "state": self.state or "",
                "zip": self.zip or "",
            }
        else:
            request.update({"apn": self.apn or "", "county": self.county or "", "state": self.state or ""})
        if self.first_name or self.last_name:
            request["name"] = {"first": self.first_name or "", "last": self.last_name or ""}
        return request


@dataclass(frozen=True, slots=True)
class SkipTracePhone:
    """A phone found for a person. Missing ``dnc``/``tcpa`` flags count as set (fail closed)."""

    number: str
    rank: int | None
    type: str | None
    carrier: str | None
    tested: bool
    reachable: bool
    dnc: bool
    tcpa: bool

    @property
    def callable(self) -> bool:
        """Neither on a do-not-call list nor TCPA-blacklisted."""
        return not (self.dnc or self.tcpa)


@dataclass(frozen=True, slots=True)
class SkipTraceEmail:
    """An email found for a person."""

    email: str
    rank: int | None
    tested: bool


@dataclass(frozen=True, slots=True)
class SkipTracePerson:
    """A person tied to the property. Missing litigator/deceased flags count as set (fail closed)."""

    first_name: str | None
    last_name: str | None
    full_name: str | None
    property_owner: bool
    litigator: bool
    deceased: bool
    dob: str | None
    phones: tuple[SkipTracePhone, ...]
    emails: tuple[SkipTraceEmail, ...]

    @property
    def contactable(self) -> bool:
        """Not a known TCPA litigator and not deceased."""
        return not (self.litigator or self.deceased)

    @property
    def callable_phones(self) -> tuple[SkipTracePhone, ...]:
        """Phones that may be called: the person is contactable and the phone is not flagged."""
        return tuple(p for p in self.phones if p.callable) if self.contactable else ()

    @property
    def birth_year(self) -> int | None:
        """Year of ``dob`` when known."""
        return leading_year(self.dob)


@dataclass(frozen=True, slots=True)
class SkipTraceResult:
    """BatchData's answer for one :class:`SkipTraceInput` (billed only when ``matched``)."""

    request_id: str
    matched: bool
    error: bool = False
    error_message: str | None = None
    persons: tuple[SkipTracePerson, ...] = ()

    @property
    def owners(self) -> tuple[SkipTracePerson, ...]:
        """Persons flagged as property owners."""
        return tuple(p for p in self.persons if p.property_owner)

    @classmethod
    def from_wire(cls, item: Mapping[str, Any], *, request_id: str | None = None) -> SkipTraceResult:
        """Parse one entry of ``result.data``; ``request_id`` replaces the wire id."""
        meta = as_mapping(item.get("meta"))
        wire_id = as_mapping(item.get("input")).get("requestId")
        return cls(
            request_id=request_id if request_id is not None else str(wire_id or ""),
            matched=meta.get("matched") is True,
            error=meta.get("error") is True,
            error_message=blank_to_none(meta.get("errorMessage")),
            persons=tuple(_parse_person(p) for p in as_list(item.get("persons")) if isinstance(p, Mapping)),
        )


@dataclass(frozen=True, slots=True)
class SkipTraceResponse:
    """One parsed skip-trace response."""

    results: tuple[SkipTraceResult, ...]
    request_count: int
    match_count: int
    no_match_count: int
    error_count: int


def parse_skip_trace_response(body: Mapping[str, Any]) -> SkipTraceResponse:
    """Parse a skip-trace response body (results keep their wire ``requestId``)."""
    result = as_mapping(body.get("result"))
    counts = as_mapping(as_mapping(result.get("meta")).get("results"))
    results = tuple(SkipTraceResult.from_wire(item) for item in as_list(result.get("data")) if isinstance(item, Mapping))
    return SkipTraceResponse(
        results=results,
        request_count=to_int(counts.get("requestCount")) or len(results),
        match_count=to_int(counts.get("matchCount")) or sum(r.matched for r in results),
        no_match_count=to_int(counts.get("noMatchCount")) or 0,
        error_count=to_int(counts.get("errorCount")) or 0,
    )


def _parse_person(person: Mapping[str, Any]) -> SkipTracePerson:
    name = as_mapping(person.get("name"))
    return SkipTracePerson(
        first_name=blank_to_none(name.get("first")),
        last_name=blank_to_none(name.get("last")),
        full_name=blank_to_none(name.get("full")),
        property_owner=flag(person.get("propertyOwner"), missing=False),
        litigator=flag(person.get("litigator"), missing=True),
        deceased=flag(person.get("deceased"), missing=True),
        dob=blank_to_none(person.get("dob")),
        phones=tuple(
            SkipTracePhone(
                number=str(phone.get("number") or ""),
                rank=to_int(phone.get("rank")),
                type=blank_to_none(phone.get("type")),
                carrier=blank_to_none(phone.get("carrier")),
                tested=flag(phone.get("tested"), missing=False),
                reachable=flag(phone.get("reachable"), missing=False),
                dnc=flag(phone.get("dnc"), missing=True),
                tcpa=flag(phone.get("tcpa"), missing=True),
            )
            for phone in as_list(person.get("phones"))
            if isinstance(phone, Mapping) and phone.get("number")
        ),
        emails=tuple(
            SkipTraceEmail(
                email=str(email.get("email")),
                rank=to_int(email.get("rank")),
                tested=flag(email.get("tested"), missing=False),
            )
            for email in as_list(person.get("emails"))
            if isinstance(email, Mapping) and email.get("email")
        ),
    )


class BatchDataResource(BatchingApiResource):
    """BatchData property skip trace: owners, phones (DNC/TCPA flags), emails, litigator/deceased."""

    provider: ClassVar[str] = "batchdata"
    #: Dagster concurrency pool for assets calling this resource.
    pool: ClassVar[str] = "batchdata"

    api_token: str = Field(description="BatchData API token (Bearer); pass dg.EnvVar(...).")
    base_url: str = Field(default=BATCHDATA_BASE_URL, description="BatchData API root URL.")
    batch_size: int = Field(
        default=BATCHDATA_MAX_REQUESTS, ge=1, le=BATCHDATA_MAX_REQUESTS, description="Requests per call."
    )
    include_tcpa_blacklisted_phones: bool = Field(
        default=True,
        description="Return TCPA-blacklisted phones flagged tcpa=true (so the pipeline can record and suppress them).",
    )

    def skip_trace(self, *, requests: Sequence[SkipTraceInput]) -> list[SkipTraceResult]:
        """Skip-trace ``requests``; one :class:`SkipTraceResult` per input, same order and ``request_id``.

        Raises :class:`~equity_assets.vendors.http.ProviderAuthError` on a bad token and other
        :class:`~equity_assets.vendors.http.ProviderError` subclasses on HTTP/transport failure.
        """
        if not requests:
            return []
        return self._in_batches(self._trace_batch, requests)

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
