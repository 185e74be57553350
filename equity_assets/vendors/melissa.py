"""Melissa Personator Consumer: its wire records and its Dagster resource.

The resource turns :class:`ContactInput` into wire JSON and wire JSON back into
:class:`PersonatorResult`; nothing else in the pipeline reads Personator JSON. Parsers are
tolerant: unknown fields are ignored, missing ones become ``None`` (Melissa's single-space
blanks too). Batches of at most 100 go over the shared retrying session, a few at a time
(``max_concurrency`` threads), results in input order. Assets that call it declare
``pool=MelissaResource.pool`` so Dagster caps concurrent use across runs.

Secrets come from the environment at the definitions level, e.g.
``MelissaResource(license_key=dg.EnvVar("MELISSA_LICENSE_KEY"))``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import Field

from equity_assets.vendors.http import BatchingApiResource, ProviderError, ProviderResponseError
from equity_assets.vendors.wire import blank_to_none, codes_with_prefix, leading_year, to_float, to_int

#: Address codes meaning "a deliverable address was found" (fully, building only, non-USPS).
ADDRESS_VERIFIED_CODES = frozenset({"AS01", "AS02", "AS03"})
#: Transmission codes meaning the license is missing, wrong or disabled.
LICENSE_ERROR_CODES = frozenset({"GE04", "GE05", "GE06"})
#: Transmission code for "more records than the service accepts in one request".
TOO_MANY_RECORDS_CODE = "GE03"


@dataclass(frozen=True, slots=True)
class ContactInput:
    """One contact to verify. ``record_id`` is the caller's id; results come back with it."""

    record_id: str
    address_line1: str | None = None
    address_line2: str | None = None
    city: str | None = None
    state: str | None = None
    postal_code: str | None = None
    country: str | None = None
    email: str | None = None
    phone: str | None = None
    full_name: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    mak: str | None = None  # a known MAK lets Melissa skip the address match

    def to_wire(self, wire_id: str) -> dict[str, str]:
        """The Personator request record (every value a string, blanks empty)."""
        return {
            "RecordID": wire_id,
            "AddressLine1": self.address_line1 or "",
            "AddressLine2": self.address_line2 or "",
            "City": self.city or "",
            "State": self.state or "",
            "PostalCode": self.postal_code or "",
            "Country": self.country or "",
            "EmailAddress": self.email or "",
            "PhoneNumber": self.phone or "",
            "FullName": self.full_name or "",
            "FirstName": self.first_name or "",
            "LastName": self.last_name or "",
            "MelissaAddressKey": self.mak or "",
        }


@dataclass(frozen=True, slots=True)
class PersonatorResult:
    """Melissa's verdict on one contact, blanks as ``None``."""

    record_id: str
    result_codes: tuple[str, ...]
    address_line1: str | None = None
    address_line2: str | None = None
    city: str | None = None
    state: str | None = None
    postal_code: str | None = None
    mak: str | None = None
    mak_base: str | None = None
    address_key: str | None = None
    email: str | None = None
    phone: str | None = None
    date_of_birth: str | None = None  # YYYYMM
    county_name: str | None = None
    county_fips: str | None = None
    latitude: float | None = None
    longitude: float | None = None

    def has(self, code: str) -> bool:
        """True if Melissa returned ``code`` for this record."""
        return code in self.result_codes

    @property
    def address_codes(self) -> tuple[str, ...]:
        """AS/AE/AC codes."""
        return codes_with_prefix(self.result_codes, ("AS", "AE", "AC"))

    @property
    def phone_codes(self) -> tuple[str, ...]:
        """PS/PE codes."""
        return codes_with_prefix(self.result_codes, ("PS", "PE"))

    @property
    def email_codes(self) -> tuple[str, ...]:
        """ES/EE codes."""
        return codes_with_prefix(self.result_codes, ("ES", "EE"))

    @property
    def address_verified(self) -> bool:
        """A deliverable address was found (AS01/AS02/AS03) and no address error was raised."""
        codes = self.result_codes
        return any(c in ADDRESS_VERIFIED_CODES for c in codes) and not any(c.startswith("AE") for c in codes)

    @property
    def birth_year(self) -> int | None:
        """Year of ``date_of_birth`` when Melissa knows it."""
        return leading_year(self.date_of_birth)

    @classmethod
    def from_wire(cls, record: Mapping[str, Any], *, record_id: str | None = None) -> PersonatorResult:
        """Parse one response record; ``record_id`` replaces the wire id (the caller's own id)."""
        values = {attr: blank_to_none(record.get(wire)) for attr, wire in _PERSONATOR_TEXT_FIELDS.items()}
        return cls(
            record_id=record_id if record_id is not None else (blank_to_none(record.get("RecordID")) or ""),
            result_codes=parse_result_codes(record.get("Results")),
            latitude=to_float(blank_to_none(record.get("Latitude"))),
            longitude=to_float(blank_to_none(record.get("Longitude"))),
            **values,
        )


# PersonatorResult text attribute -> Personator output column.
_PERSONATOR_TEXT_FIELDS = {
    "address_line1": "AddressLine1",
    "address_line2": "AddressLine2",
    "city": "City",
    "state": "State",
    "postal_code": "PostalCode",
    "mak": "MelissaAddressKey",
    "mak_base": "MelissaAddressKeyBase",
    "address_key": "AddressKey",
    "email": "EmailAddress",
    "phone": "PhoneNumber",
    "date_of_birth": "DateOfBirth",
    "county_name": "CountyName",
    "county_fips": "CountyFIPS",
}


@dataclass(frozen=True, slots=True)
class PersonatorResponse:
    """One parsed Personator response: request-level codes plus the records."""

    transmission_codes: tuple[str, ...]
    records: tuple[PersonatorResult, ...]
    total_records: int | None = None
    transmission_reference: str | None = None
    version: str | None = None


def parse_personator_response(body: Mapping[str, Any]) -> PersonatorResponse:
    """Parse a Personator response body (records keep their wire ``RecordID``)."""
    raw_records = body.get("Records") or []
    return PersonatorResponse(
        transmission_codes=parse_result_codes(body.get("TransmissionResults")),
        records=tuple(PersonatorResult.from_wire(r) for r in raw_records if isinstance(r, Mapping)),
        total_records=to_int(blank_to_none(body.get("TotalRecords"))),
        transmission_reference=blank_to_none(body.get("TransmissionReference")),
        version=blank_to_none(body.get("Version")),
    )


def parse_result_codes(value: Any) -> tuple[str, ...]:
    """``"AC02,AC03,AS01"`` -> ``("AC02", "AC03", "AS01")``; blank -> ``()``."""
    text = blank_to_none(value)
    if text is None:
        return ()
    return tuple(code.strip().upper() for code in text.split(",") if code.strip())


# --------------------------------------------------------------------------------------------
# the resource
# --------------------------------------------------------------------------------------------

MELISSA_BASE_URL = "https://personator.melissadata.net"
MELISSA_PATH = "/v3/WEB/ContactVerify/doContactVerify"
MELISSA_MAX_RECORDS = 100


class MelissaTransmissionError(ProviderError):
    """Personator refused the whole request (``TransmissionResults`` GE*/SE* codes)."""

    def __init__(self, message: str, *, codes: tuple[str, ...]) -> None:
        super().__init__(message, provider="melissa")
        self.codes = codes


class MelissaLicenseError(MelissaTransmissionError):
    """License key empty, invalid or disabled (GE04/GE05/GE06): nothing will work until it is fixed."""


class MelissaResource(BatchingApiResource):
    """Melissa Personator Consumer: address/phone/email verification, MAK, date of birth."""

    provider: ClassVar[str] = "melissa"
    #: Dagster concurrency pool for assets calling this resource.
    pool: ClassVar[str] = "melissa"

    license_key: str = Field(description="Melissa license key (CustomerID); pass dg.EnvVar(...).")
    base_url: str = Field(default=MELISSA_BASE_URL, description="Personator root URL.")
    batch_size: int = Field(
        default=MELISSA_MAX_RECORDS, ge=1, le=MELISSA_MAX_RECORDS, description="Records per request."
    )
    actions: str = Field(default="Check,Verify", description="Personator Actions.")
    columns: str = Field(
        default="GrpAddressDetails,GrpCensus,GrpGeocode,GrpDemographicBasic",
        description="Personator output column groups (GrpDemographicBasic gives DateOfBirth).",
    )

    def verify_contacts(self, *, records: Sequence[ContactInput]) -> list[PersonatorResult]:
        """Verify ``records``; one :class:`PersonatorResult` per input, same order, same ``record_id``.

        Raises :class:`MelissaLicenseError` / :class:`MelissaTransmissionError` when Melissa refuses
        the request, :class:`~equity_assets.vendors.http.ProviderError` subclasses on HTTP/transport failure.
        """
        if not records:
            return []
        return self._in_batches(self._verify_batch, records)

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
