"""What verification knows about one lead: the lead as sent, each provider's answer, the verdict.

Providers speak different languages (Melissa: result codes; BatchData: persons with flags), so
each answer is first translated into a :class:`ProviderAnswer` (codes from
`verification_code_map`, found contacts, person flags). :func:`combine_answers` then folds the
answers a lead received, in routing order, into one :class:`LeadVerdict` that the asset writes.
Whether a channel is *usable* is decided later, in SQL, from the code map — not here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

#: Pseudo-codes of BatchData verdicts (defined in sql/0005_verification.sql).
PHONE_OK, PHONE_DNC, PHONE_TCPA, PHONE_UNREACHABLE = "BP01", "BP02", "BP03", "BP04"
PHONE_LITIGATOR, PHONE_DECEASED = "BL01", "BD01"
EMAIL_TESTED, EMAIL_UNTESTED, EMAIL_DECEASED = "BE01", "BE02", "BD02"
#: A skip-trace email that is not an address (a blank inside, two @ …): kept only as the reason.
EMAIL_MALFORMED = "BE03"
#: Phone codes that forbid calling the number (it goes to `dnc_phones` and `suppression_list`).
PHONE_FORBIDDEN = frozenset({PHONE_DNC, PHONE_TCPA, PHONE_LITIGATOR, PHONE_DECEASED})
#: Email codes that forbid emailing the address.
EMAIL_FORBIDDEN = frozenset({EMAIL_DECEASED})


@dataclass(frozen=True, slots=True)
class LeadToVerify:
    """The fields of a `leads` row that the providers are asked about."""

    id: str
    address: str | None = None
    unit: str | None = None
    city: str | None = None
    state: str | None = None
    zip: str | None = None
    county: str | None = None
    apn: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    phone: str | None = None  # E.164
    mak: str | None = None


@dataclass(frozen=True, slots=True)
class FoundContact:
    """A phone (E.164) or email a provider found for the property, with our codes for it."""

    value: str
    codes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ProviderAnswer:
    """One provider's answer about one lead, in our vocabulary.

    ``email_codes`` / ``phone_codes`` judge the lead's *own* email and phone; contacts the provider
    found are in ``emails`` / ``phones`` with their own codes.
    """

    provider: str
    lead_id: str
    matched: bool
    mak: str | None = None
    birth_month: date | None = None
    address_codes: tuple[str, ...] = ()
    email_codes: tuple[str, ...] = ()
    phone_codes: tuple[str, ...] = ()
    emails: tuple[FoundContact, ...] = ()
    phones: tuple[FoundContact, ...] = ()
    litigator: bool = False
    deceased: bool = False
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Suppression:
    """A contact value that must never be used, and the code that says why."""

    channel: str  # 'email' | 'phone'
    value: str
    code: str


@dataclass(frozen=True, slots=True)
class LeadVerdict:
    """Everything the asset writes for one verified lead."""

    lead_id: str
    provider: str
    matched: bool
    mak: str | None
    birth_month: date | None
    address_codes: tuple[str, ...]
    email_codes: tuple[str, ...]
    phone_codes: tuple[str, ...]
    new_email: str | None  # fills an empty `leads.email`
    new_phone: str | None  # fills an empty `leads.phone`
    alt_emails: tuple[str, ...]
    alt_phones: tuple[str, ...]
    dnc_phones: tuple[str, ...]
    litigator: bool
    deceased: bool
    melissa_payload: dict[str, Any] | None
    provider_payload: dict[str, Any] | None
    suppressions: tuple[Suppression, ...]
    malformed_emails: tuple[str, ...] = ()  # found but not addresses: never stored as contacts


def combine_answers(lead: LeadToVerify, answers: Sequence[ProviderAnswer]) -> LeadVerdict:
    """Fold a lead's answers (routing order, at least one) into the verdict to write.

    The first matching provider is "the provider that answered"; with no match anywhere it is the
    first that answered at all. Codes about the lead's own channels are the union of all answers
    (one provider's DNC flag must not be hidden by another's "valid"); person flags are OR-ed.
    """
    if not answers:
        raise ValueError("combine_answers needs at least one answer")
    primary = next((a for a in answers if a.matched), answers[0])
    found = _first_seen(c for a in answers for c in a.emails)
    malformed = tuple(c.value for c in found if EMAIL_MALFORMED in c.codes)
    found_emails = [c for c in found if EMAIL_MALFORMED not in c.codes]
    found_phones = _first_seen(c for a in answers for c in a.phones)
    email_codes = _union(a.email_codes for a in answers)
    phone_codes = _union(a.phone_codes for a in answers)

    new_email = None
    if lead.email is None:
        new_email = next((c for c in found_emails if c.codes == (EMAIL_TESTED,)), None)
        if new_email is not None:
            email_codes = new_email.codes
        elif malformed:  # why the lead has no email: the one the provider had is not an address
            email_codes = (EMAIL_MALFORMED,)
    new_phone = None
    if lead.phone is None:
        new_phone = next((c for c in found_phones if c.codes == (PHONE_OK,)), None)
        if new_phone is not None:
            phone_codes = new_phone.codes

    litigator = any(a.litigator for a in answers)
    deceased = any(a.deceased for a in answers)
    primary_email = lead.email or (new_email.value if new_email else None)
    primary_phone = lead.phone or (new_phone.value if new_phone else None)
    return LeadVerdict(
        lead_id=lead.id,
        provider=primary.provider,
        matched=primary.matched,
        mak=next((a.mak for a in answers if a.mak), None),
        birth_month=next((a.birth_month for a in answers if a.birth_month), None),
        address_codes=_union(a.address_codes for a in answers),
        email_codes=email_codes,
        phone_codes=phone_codes,
        new_email=new_email.value if new_email else None,
        new_phone=new_phone.value if new_phone else None,
        alt_emails=tuple(c.value for c in found_emails if c.value != primary_email),
        alt_phones=tuple(
            c.value for c in found_phones if c.value != primary_phone and not PHONE_FORBIDDEN.intersection(c.codes)
        ),
        dnc_phones=tuple(c.value for c in found_phones if PHONE_FORBIDDEN.intersection(c.codes)),
        litigator=litigator,
        deceased=deceased,
        melissa_payload=next((a.payload for a in answers if a.provider == "melissa"), None),
        provider_payload=next((a.payload for a in answers if a.provider != "melissa"), None),
        suppressions=_suppressions(found_emails, found_phones, primary_email, primary_phone, litigator, deceased),
        malformed_emails=malformed,
    )


def _suppressions(
    emails: Sequence[FoundContact],
    phones: Sequence[FoundContact],
    primary_email: str | None,
    primary_phone: str | None,
    litigator: bool,
    deceased: bool,
) -> tuple[Suppression, ...]:
    """Flagged found contacts, plus the lead's own channels when the owner is a litigator/deceased.

    Codes on the lead's own channels (ES06 spamtrap, BP02 DNC...) are suppressed in SQL from the
    code map; this covers what only the person flags reveal.
    """
    out = [Suppression("phone", c.value, code) for c in phones for code in c.codes if code in PHONE_FORBIDDEN]
    out += [Suppression("email", c.value, code) for c in emails for code in c.codes if code in EMAIL_FORBIDDEN]
    if primary_phone and litigator:
        out.append(Suppression("phone", primary_phone, PHONE_LITIGATOR))
    if primary_phone and deceased:
        out.append(Suppression("phone", primary_phone, PHONE_DECEASED))
    if primary_email and deceased:
        out.append(Suppression("email", primary_email, EMAIL_DECEASED))
    return tuple(out)


def _union(groups: Iterable[Iterable[str]]) -> tuple[str, ...]:
    """Codes of all groups, first appearance kept, no repeats."""
    return tuple(dict.fromkeys(code for group in groups for code in group))


def _first_seen(contacts: Iterable[FoundContact]) -> list[FoundContact]:
    """One entry per value (the first, i.e. best-ranked), in order."""
    seen: dict[str, FoundContact] = {}
    for contact in contacts:
        seen.setdefault(contact.value, contact)
    return list(seen.values())
