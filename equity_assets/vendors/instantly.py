"""Instantly (email campaigns): its wire records and its Dagster resource (bulk lead upload in chunks of 1,000).

One ``add_leads`` call sends its chunks one after another; callers that push many campaigns run
up to ``max_concurrency`` calls at once (Instantly allows 100 requests/s per workspace, and a few
requests in flight stay far below that). 429 and 5xx are retried with backoff, ``Retry-After`` honoured.

Partial failure contract: ``add_leads`` either returns an :class:`AddLeadsResult` in which every
chunk was accepted, or raises :class:`InstantlyChunkError` carrying the chunks accepted before the
failing one. The failing chunk's fate is unknown (a timed-out request may still have landed) and
later chunks were not sent; with ``skip_if_in_campaign=True`` re-sending them is safe.

Secrets come from the environment at the definitions level, e.g.
``InstantlyResource(api_key=dg.EnvVar("INSTANTLY_API_KEY"), campaign_id=...)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import Field

from equity_assets.vendors.http import HttpApiResource, ProviderError, ProviderResponseError

INSTANTLY_BASE_URL = "https://api.instantly.ai"
INSTANTLY_ADD_LEADS_PATH = "/api/v2/leads/add"
INSTANTLY_MAX_LEADS_PER_CALL = 1000

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


class InstantlyChunkError(ProviderError):
    """A chunk could not be delivered after retries.

    ``accepted`` lists the chunks Instantly confirmed before the failure; leads from
    ``failed_start`` on (the failing chunk and everything after it) are not confirmed.
    """

    def __init__(
        self,
        message: str,
        *,
        accepted: tuple[ChunkResult, ...],
        failed_index: int,
        failed_start: int,
        failed_stop: int,
        retries: int,
    ) -> None:
        super().__init__(message, provider="instantly", retries=retries)
        self.accepted = accepted
        self.failed_index = failed_index
        self.failed_start = failed_start
        self.failed_stop = failed_stop


class InstantlyResource(HttpApiResource):
    """Instantly API v2: add leads to a campaign (or list)."""

    provider: ClassVar[str] = "instantly"
    #: Dagster concurrency pool for assets calling this resource.
    pool: ClassVar[str] = "instantly"

    api_key: str = Field(description="Instantly API key (Bearer); pass dg.EnvVar(...).")
    base_url: str = Field(default=INSTANTLY_BASE_URL, description="Instantly API root URL.")
    campaign_id: str | None = Field(default=None, description="Default campaign for add_leads.")
    chunk_size: int = Field(
        default=INSTANTLY_MAX_LEADS_PER_CALL, ge=1, le=INSTANTLY_MAX_LEADS_PER_CALL, description="Leads per call."
    )
    max_concurrency: int = Field(
        default=4, ge=1, le=32, description="Uploads in flight at once when pushing many campaigns."
    )
    skip_if_in_workspace: bool = Field(default=False, description="Skip leads present in any campaign/list.")
    verify_leads_on_import: bool = Field(default=False, description="Let Instantly verify emails on import.")

    def _connection_pool_size(self) -> int:
        return max(4, self.max_concurrency)

    def add_leads(
        self,
        *,
        leads: Sequence[InstantlyLead],
        campaign_id: str | None = None,
        list_id: str | None = None,
        skip_if_in_campaign: bool = True,
    ) -> AddLeadsResult:
        """Upload ``leads`` in chunks of ``chunk_size`` to a campaign (default: the resource's) or a list.

        Returns one :class:`ChunkResult` per chunk, in order. Raises :class:`InstantlyChunkError`
        (with the chunks already accepted) when a chunk fails after retries, and ``ValueError``
        unless exactly one of campaign / list is given.
        """
        target = self._target(campaign_id, list_id)
        session = self._get_session()
        retries_before = session.retry_counter.value
        accepted: list[ChunkResult] = []
        for index, start in enumerate(range(0, len(leads), self.chunk_size)):
            chunk = leads[start : start + self.chunk_size]
            try:
                accepted.append(self._send_chunk(chunk, target, index=index, start=start, skip=skip_if_in_campaign))
            except ProviderError as exc:
                raise InstantlyChunkError(
                    f"instantly: chunk {index} (leads {start}..{start + len(chunk) - 1}) failed: {exc}",
                    accepted=tuple(accepted),
                    failed_index=index,
                    failed_start=start,
                    failed_stop=start + len(chunk),
                    retries=session.retry_counter.value - retries_before,
                ) from exc
        return AddLeadsResult(
            campaign_id=target.get("campaign_id"),
            list_id=target.get("list_id"),
            chunks=tuple(accepted),
            retries=session.retry_counter.value - retries_before,
        )

    def _target(self, campaign_id: str | None, list_id: str | None) -> dict[str, str]:
        """``{"campaign_id": ...}`` or ``{"list_id": ...}``; Instantly wants exactly one."""
        if campaign_id and list_id:
            raise ValueError("pass campaign_id or list_id, not both")
        if list_id:
            return {"list_id": list_id}
        campaign = campaign_id or self.campaign_id
        if not campaign:
            raise ValueError("no campaign_id given and the resource has no default campaign_id")
        return {"campaign_id": campaign}

    def _send_chunk(
        self, chunk: Sequence[InstantlyLead], target: Mapping[str, str], *, index: int, start: int, skip: bool
    ) -> ChunkResult:
        payload: dict[str, Any] = {
            **target,
            "leads": [lead.to_wire() for lead in chunk],
            "skip_if_in_campaign": skip,
            "skip_if_in_workspace": self.skip_if_in_workspace,
            "verify_leads_on_import": self.verify_leads_on_import,
        }
        body = self._post(INSTANTLY_ADD_LEADS_PATH, payload, headers={"Authorization": f"Bearer {self.api_key}"})
        if not isinstance(body, Mapping) or "leads_uploaded" not in body:
            raise ProviderResponseError("instantly: leads/add response without leads_uploaded", provider=self.provider)
        return ChunkResult.from_wire(body, index=index, start=start, emails=tuple(lead.email for lead in chunk))
