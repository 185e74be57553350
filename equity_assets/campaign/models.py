"""Typed records for the Instantly email-campaign API (bulk lead upload)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

CustomValue = str | int | float | bool | None


@dataclass(frozen=True, slots=True)
class InstantlyLead:
    """One lead to add to a campaign. ``custom_variables`` feed the email template."""

    email: str
    first_name: str | None = None
    last_name: str | None = None
    company_name: str | None = None
    personalization: str | None = None
    phone: str | None = None
    website: str | None = None
    custom_variables: Mapping[str, CustomValue] = field(default_factory=dict)

    def to_wire(self) -> dict[str, Any]:
        """The lead object of ``POST /api/v2/leads/add`` (unset fields omitted)."""
        lead: dict[str, Any] = {"email": self.email}
        for name in ("first_name", "last_name", "company_name", "personalization", "phone", "website"):
            value = getattr(self, name)
            if value is not None:
                lead[name] = value
        if self.custom_variables:
            lead["custom_variables"] = dict(self.custom_variables)
        return lead


@dataclass(frozen=True, slots=True)
class ChunkResult:
    """Instantly's answer to one accepted chunk: ``leads[start:stop]`` of the caller's sequence.

    The chunk reached Instantly; the counts say what Instantly did with its leads. Only
    ``leads_uploaded`` is documented by Instantly, the other counts default to 0 when absent.
    """

    index: int
    start: int
    stop: int
    emails: tuple[str, ...]
    leads_uploaded: int
    already_in_campaign: int = 0
    skipped_count: int = 0
    invalid_email_count: int = 0
    duplicate_email_count: int = 0
    remaining_in_plan: int | None = None
    uploaded_emails: tuple[str, ...] | None = None  # from created_leads, when Instantly lists them
    uploaded_positions: tuple[int, ...] | None = None  # their `index` in the chunk, when given

    @classmethod
    def from_wire(cls, body: Mapping[str, Any], *, index: int, start: int, emails: tuple[str, ...]) -> ChunkResult:
        """Parse a ``leads/add`` response for the chunk starting at ``start``."""
        created = body.get("created_leads")
        uploaded_emails = (
            tuple(str(lead.get("email", "")) for lead in created if isinstance(lead, Mapping))
            if isinstance(created, list)
            else None
        )
        indexes = [lead.get("index") for lead in created if isinstance(lead, Mapping)] if isinstance(created, list) else []
        positions = tuple(indexes) if indexes and all(type(i) is int for i in indexes) else None
        return cls(
            index=index,
            start=start,
            stop=start + len(emails),
            emails=emails,
            leads_uploaded=_count(body.get("leads_uploaded")),
            already_in_campaign=_count(body.get("already_in_campaign")),
            skipped_count=_count(body.get("skipped_count")),
            invalid_email_count=_count(body.get("invalid_email_count")),
            duplicate_email_count=_count(body.get("duplicate_email_count")),
            remaining_in_plan=_optional_count(body.get("remaining_in_plan")),
            uploaded_emails=uploaded_emails,
            uploaded_positions=positions,
        )

    def created_positions(self) -> set[int] | None:
        """Which leads of the chunk (0-based) Instantly created; None when it did not list them."""
        if self.uploaded_positions is not None:
            return set(self.uploaded_positions)
        if self.uploaded_emails is None:
            return None
        created = {email.strip().lower() for email in self.uploaded_emails}
        return {i for i, email in enumerate(self.emails) if email.strip().lower() in created}


@dataclass(frozen=True, slots=True)
class AddLeadsResult:
    """Outcome of one :meth:`InstantlyResource.add_leads` call: every chunk was accepted."""

    campaign_id: str | None
    list_id: str | None
    chunks: tuple[ChunkResult, ...]
    retries: int = 0

    @property
    def leads_sent(self) -> int:
        return sum(len(chunk.emails) for chunk in self.chunks)

    @property
    def leads_uploaded(self) -> int:
        return sum(chunk.leads_uploaded for chunk in self.chunks)

    @property
    def already_in_campaign(self) -> int:
        return sum(chunk.already_in_campaign for chunk in self.chunks)

    @property
    def invalid_email_count(self) -> int:
        return sum(chunk.invalid_email_count for chunk in self.chunks)

    @property
    def duplicate_email_count(self) -> int:
        return sum(chunk.duplicate_email_count for chunk in self.chunks)

    @property
    def remaining_in_plan(self) -> int | None:
        """As reported with the last chunk."""
        return self.chunks[-1].remaining_in_plan if self.chunks else None


def _count(value: Any) -> int:
    return _optional_count(value) or 0


def _optional_count(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
