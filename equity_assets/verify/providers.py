"""The two verification providers behind one interface the router can fall back across.

Each adapter sends one batch (at most the resource's ``batch_size``) through its Dagster
resource and translates the typed results of the vendor modules (:mod:`equity_assets.vendors`) into
:class:`~equity_assets.verify.verdict.ProviderAnswer`. Errors are the resources' own
:class:`~equity_assets.vendors.http.ProviderError` subclasses, raised after the client's retries.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from datetime import date
from typing import Protocol

from email_validator import EmailNotValidError, validate_email

from equity_assets.vendors.batchdata import (
    BatchDataResource,
    SkipTraceInput,
    SkipTracePerson,
    SkipTracePhone,
    SkipTraceResult,
)
from equity_assets.vendors.melissa import ContactInput, MelissaResource, PersonatorResult
from equity_assets.verify.verdict import (
    EMAIL_DECEASED,
    EMAIL_MALFORMED,
    EMAIL_TESTED,
    EMAIL_UNTESTED,
    PHONE_DECEASED,
    PHONE_DNC,
    PHONE_LITIGATOR,
    PHONE_OK,
    PHONE_TCPA,
    PHONE_UNREACHABLE,
    FoundContact,
    LeadToVerify,
    ProviderAnswer,
)

_MAK = re.compile(r"^[0-9]{10}$")
_YYYYMM = re.compile(r"^(\d{4})-?(\d{2})")


class VerificationProvider(Protocol):
    """What the router needs from a provider."""

    name: str
    batch_size: int
    max_concurrency: int

    def answer(self, leads: Sequence[LeadToVerify]) -> list[ProviderAnswer]:
        """One request for ``leads`` (at most ``batch_size``); one answer per lead, same order."""

    @property
    def retries(self) -> int:
        """HTTP retries spent so far."""


class _ResourceProvider:
    """A provider backed by one of the HTTP resources (batching, concurrency, retries live there)."""

    name: str

    def __init__(self, resource: MelissaResource | BatchDataResource) -> None:
        self.resource = resource
        self.batch_size = resource.batch_size
        self.max_concurrency = resource.max_concurrency

    @property
    def retries(self) -> int:
        """HTTP retries spent so far."""
        return self.resource.retries_total


class MelissaProvider(_ResourceProvider):
    """Melissa Personator: matched = a deliverable address was found (AS01/02/03, no AE) for a lead
    that has an email or phone to check. A lead with neither needs a skip trace to find contacts,
    so it goes on to the next provider like a no-match (keeping Melissa's MAK and codes)."""

    name = "melissa"

    def answer(self, leads: Sequence[LeadToVerify]) -> list[ProviderAnswer]:
        results = self.resource.verify_contacts(records=[contact_input(lead) for lead in leads])
        return [melissa_answer(lead, result) for lead, result in zip(leads, results, strict=True)]


class BatchDataProvider(_ResourceProvider):
    """BatchData skip trace: matched = the property was found (``meta.matched``)."""

    name = "batchdata"

    def answer(self, leads: Sequence[LeadToVerify]) -> list[ProviderAnswer]:
        results = self.resource.skip_trace(requests=[skip_trace_input(lead) for lead in leads])
        return [batchdata_answer(lead, result) for lead, result in zip(leads, results, strict=True)]


# ---------------------------------------------------------------------------------------------
# Melissa
# ---------------------------------------------------------------------------------------------


def contact_input(lead: LeadToVerify) -> ContactInput:
    """The Personator record for a lead (a known MAK lets Melissa skip the address match)."""
    return ContactInput(
        record_id=lead.id,
        address_line1=lead.address,
        address_line2=lead.unit,
        city=lead.city,
        state=lead.state,
        postal_code=lead.zip,
        email=lead.email,
        phone=lead.phone,
        first_name=lead.first_name,
        last_name=lead.last_name,
        mak=lead.mak,
    )


def melissa_answer(lead: LeadToVerify, result: PersonatorResult) -> ProviderAnswer:
    """Personator's verdict in our vocabulary; codes of absent channels are dropped."""
    address_found = result.address_verified
    return ProviderAnswer(
        provider="melissa",
        lead_id=lead.id,
        matched=address_found and bool(lead.email or lead.phone),
        mak=result.mak if address_found and result.mak and _MAK.match(result.mak) else None,
        birth_month=birth_month(result.date_of_birth),
        address_codes=result.address_codes,
        email_codes=result.email_codes if lead.email else (),
        phone_codes=result.phone_codes if lead.phone else (),
        payload=_flat_payload(result),
    )


#: Personator fields are flat; reading them directly is ~15x faster than dataclasses.asdict.
_PERSONATOR_FIELDS = tuple(f.name for f in dataclasses.fields(PersonatorResult))


def _flat_payload(result: PersonatorResult) -> dict[str, object]:
    return {name: getattr(result, name) for name in _PERSONATOR_FIELDS}


# ---------------------------------------------------------------------------------------------
# BatchData
# ---------------------------------------------------------------------------------------------


def skip_trace_input(lead: LeadToVerify) -> SkipTraceInput:
    """The skip-trace request for a lead: by address when known, else by APN + county + state."""
    street = lead.address
    if street and lead.unit:
        street = f"{street} # {lead.unit}"
    return SkipTraceInput(
        request_id=lead.id,
        street=street,
        city=lead.city,
        state=lead.state,
        zip=lead.zip,
        first_name=lead.first_name,
        last_name=lead.last_name,
        apn=lead.apn,
        county=lead.county,
    )


def batchdata_answer(lead: LeadToVerify, result: SkipTraceResult) -> ProviderAnswer:
    """Skip-trace persons in our vocabulary: phone/email pseudo-codes, owner flags, owner's birth month.

    The lead is the property owner, so the owner's litigator/deceased flags become the lead's;
    any person's flagged numbers are still reported (and suppressed) as found contacts.
    """
    matched = result.matched and not result.error
    persons = result.persons if matched else ()
    owner = _owner(persons)
    phones = tuple(
        FoundContact(number, phone_codes_of(phone, person))
        for person in persons
        for phone in person.phones
        if (number := e164(phone.number)) is not None
    )
    emails = tuple(
        found_email(email.email, email.tested, person) for person in persons for email in person.emails
        if email.email.strip()
    )
    return ProviderAnswer(
        provider="batchdata",
        lead_id=lead.id,
        matched=matched,
        birth_month=birth_month(owner.dob) if owner else None,
        email_codes=_codes_for(lead.email, emails),
        phone_codes=_codes_for(lead.phone, phones),
        emails=emails,
        phones=phones,
        litigator=bool(owner and owner.litigator),
        deceased=bool(owner and owner.deceased),
        payload=dataclasses.asdict(result),
    )


def phone_codes_of(phone: SkipTracePhone, person: SkipTracePerson) -> tuple[str, ...]:
    """Our codes for one skip-trace phone: every reason not to call it, else reachable or not."""
    codes = [
        code
        for code, flagged in (
            (PHONE_DNC, phone.dnc),
            (PHONE_TCPA, phone.tcpa),
            (PHONE_LITIGATOR, person.litigator),
            (PHONE_DECEASED, person.deceased),
        )
        if flagged
    ]
    if codes:
        return tuple(codes)
    return (PHONE_OK,) if phone.tested and phone.reachable else (PHONE_UNREACHABLE,)


def found_email(value: str, tested: bool, person: SkipTracePerson) -> FoundContact:
    """A skip-trace email as a found contact: normalized when that is unambiguous (blanks around it
    trimmed, lower-cased), else kept trimmed with :data:`EMAIL_MALFORMED` as the reason it is unusable."""
    address = clean_email(value)
    if address is None:
        return FoundContact(value.strip(), (EMAIL_MALFORMED,))
    return FoundContact(address, email_codes_of(tested, person))


def email_codes_of(tested: bool, person: SkipTracePerson) -> tuple[str, ...]:
    """Our code for one skip-trace email."""
    if person.deceased:
        return (EMAIL_DECEASED,)
    return (EMAIL_TESTED,) if tested else (EMAIL_UNTESTED,)


def _owner(persons: Sequence[SkipTracePerson]) -> SkipTracePerson | None:
    return next((p for p in persons if p.property_owner), persons[0] if persons else None)


def _codes_for(value: str | None, found: Sequence[FoundContact]) -> tuple[str, ...]:
    """Codes of the lead's own value when the provider reported it too, else none."""
    if value is None:
        return ()
    return next((c.codes for c in found if c.value == value), ())


# ---------------------------------------------------------------------------------------------
# value helpers
# ---------------------------------------------------------------------------------------------


def birth_month(value: str | None) -> date | None:
    """``YYYYMM`` (Melissa) or ``YYYY-MM-DD`` (BatchData) as the first day of that month."""
    match = _YYYYMM.match(value or "")
    if not match:
        return None
    year, month = int(match.group(1)), int(match.group(2))
    if not (1900 <= year <= date.today().year and 1 <= month <= 12):
        return None
    return date(year, month, 1)


def e164(number: str) -> str | None:
    """A US number as E.164 (``+12175550123``); None when it is not a plausible NANP number."""
    digits = re.sub(r"\D", "", number or "")
    if len(digits) == 11 and digits.startswith("1"):
        digits = digits[1:]
    if len(digits) != 10 or digits[0] in "01" or digits[3] in "01":
        return None
    return "+1" + digits


def clean_email(value: str | None) -> str | None:
    """Trimmed, lower-cased email; None unless email-validator accepts it (syntax only, no DNS).

    Only blanks *around* the address are repaired: one inside (``mary ann.lee@x.com``) could mean
    ``maryann`` or ``mary.ann``, and a guess is not a contact.
    """
    text = (value or "").strip()
    if not text:
        return None
    try:
        return validate_email(text, check_deliverability=False).normalized.lower()
    except EmailNotValidError:
        return None
