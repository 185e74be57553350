"""Typed records for the verification providers (Melissa Personator, BatchData skip trace).

Resources turn these inputs into wire JSON and wire JSON back into these results; nothing else in
the pipeline reads provider JSON. Parsers are tolerant: unknown fields are ignored, missing ones
become ``None`` (Melissa's single-space blanks too).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# --------------------------------------------------------------------------------------------
# Melissa Personator
# --------------------------------------------------------------------------------------------

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
        return _codes_with_prefix(self.result_codes, ("AS", "AE", "AC"))

    @property
    def phone_codes(self) -> tuple[str, ...]:
        """PS/PE codes."""
        return _codes_with_prefix(self.result_codes, ("PS", "PE"))

    @property
    def email_codes(self) -> tuple[str, ...]:
        """ES/EE codes."""
        return _codes_with_prefix(self.result_codes, ("ES", "EE"))

    @property
    def address_verified(self) -> bool:
        """A deliverable address was found (AS01/AS02/AS03) and no address error was raised."""
        codes = self.result_codes
        return any(c in ADDRESS_VERIFIED_CODES for c in codes) and not any(c.startswith("AE") for c in codes)

    @property
    def birth_year(self) -> int | None:
        """Year of ``date_of_birth`` when Melissa knows it."""
        return _leading_year(self.date_of_birth)

    @classmethod
    def from_wire(cls, record: Mapping[str, Any], *, record_id: str | None = None) -> PersonatorResult:
        """Parse one response record; ``record_id`` replaces the wire id (the caller's own id)."""
        values = {attr: blank_to_none(record.get(wire)) for attr, wire in _PERSONATOR_TEXT_FIELDS.items()}
        return cls(
            record_id=record_id if record_id is not None else (blank_to_none(record.get("RecordID")) or ""),
            result_codes=parse_result_codes(record.get("Results")),
            latitude=_to_float(blank_to_none(record.get("Latitude"))),
            longitude=_to_float(blank_to_none(record.get("Longitude"))),
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
        total_records=_to_int(blank_to_none(body.get("TotalRecords"))),
        transmission_reference=blank_to_none(body.get("TransmissionReference")),
        version=blank_to_none(body.get("Version")),
    )


def blank_to_none(value: Any) -> str | None:
    """Melissa's ``" "`` (and any empty or missing value) as ``None``; other values trimmed text."""
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def parse_result_codes(value: Any) -> tuple[str, ...]:
    """``"AC02,AC03,AS01"`` -> ``("AC02", "AC03", "AS01")``; blank -> ``()``."""
    text = blank_to_none(value)
    if text is None:
        return ()
    return tuple(code.strip().upper() for code in text.split(",") if code.strip())


# --------------------------------------------------------------------------------------------
# BatchData skip trace
# --------------------------------------------------------------------------------------------


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
        return _leading_year(self.dob)


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
        meta = _mapping(item.get("meta"))
        wire_id = _mapping(item.get("input")).get("requestId")
        return cls(
            request_id=request_id if request_id is not None else str(wire_id or ""),
            matched=meta.get("matched") is True,
            error=meta.get("error") is True,
            error_message=blank_to_none(meta.get("errorMessage")),
            persons=tuple(_parse_person(p) for p in _list(item.get("persons")) if isinstance(p, Mapping)),
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
    result = _mapping(body.get("result"))
    counts = _mapping(_mapping(result.get("meta")).get("results"))
    results = tuple(SkipTraceResult.from_wire(item) for item in _list(result.get("data")) if isinstance(item, Mapping))
    return SkipTraceResponse(
        results=results,
        request_count=_to_int(counts.get("requestCount")) or len(results),
        match_count=_to_int(counts.get("matchCount")) or sum(r.matched for r in results),
        no_match_count=_to_int(counts.get("noMatchCount")) or 0,
        error_count=_to_int(counts.get("errorCount")) or 0,
    )


def _parse_person(person: Mapping[str, Any]) -> SkipTracePerson:
    name = _mapping(person.get("name"))
    return SkipTracePerson(
        first_name=blank_to_none(name.get("first")),
        last_name=blank_to_none(name.get("last")),
        full_name=blank_to_none(name.get("full")),
        property_owner=_flag(person.get("propertyOwner"), missing=False),
        litigator=_flag(person.get("litigator"), missing=True),
        deceased=_flag(person.get("deceased"), missing=True),
        dob=blank_to_none(person.get("dob")),
        phones=tuple(
            SkipTracePhone(
                number=str(phone.get("number") or ""),
                rank=_to_int(phone.get("rank")),
                type=blank_to_none(phone.get("type")),
                carrier=blank_to_none(phone.get("carrier")),
                tested=_flag(phone.get("tested"), missing=False),
                reachable=_flag(phone.get("reachable"), missing=False),
                dnc=_flag(phone.get("dnc"), missing=True),
                tcpa=_flag(phone.get("tcpa"), missing=True),
            )
            for phone in _list(person.get("phones"))
            if isinstance(phone, Mapping) and phone.get("number")
        ),
        emails=tuple(
            SkipTraceEmail(
                email=str(email.get("email")),
                rank=_to_int(email.get("rank")),
                tested=_flag(email.get("tested"), missing=False),
            )
            for email in _list(person.get("emails"))
            if isinstance(email, Mapping) and email.get("email")
        ),
    )


# --------------------------------------------------------------------------------------------
# tolerant value helpers
# --------------------------------------------------------------------------------------------


def _codes_with_prefix(codes: Sequence[str], prefixes: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(code for code in codes if code.startswith(prefixes))


def _flag(value: Any, *, missing: bool) -> bool:
    """A boolean that may arrive as bool, number or text; ``missing`` when absent or unreadable."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value != 0
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("true", "t", "yes", "y", "1"):
            return True
        if text in ("false", "f", "no", "n", "0"):
            return False
    return missing


def _to_int(value: Any) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def _to_float(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _leading_year(value: str | None) -> int | None:
    if value and len(value) >= 4 and value[:4].isdigit():
        return int(value[:4])
    return None


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
