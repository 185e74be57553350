"""Pushing a batch date's queued sends to Instantly, resumable chunk by chunk.

Only ``campaign_sends`` rows still ``queued`` are pushed, so a re-run (or Dagster's "re-execute
from failure") sends just what did not reach Instantly before. Each chunk of at most 1,000 leads
is one ``add_leads`` call; its rows turn ``pushed`` (with ``email_sent`` events) in their own
transaction as soon as Instantly confirms it. A chunk whose fate is unknown (a timeout may have
landed) stays ``queued``: re-pushing it is safe because we send ``skip_if_in_campaign``.

Right before pushing, rows whose lead became suppressed or ``do_not_contact`` since selection are
withdrawn (``failed`` with the reason), and consent tokens are rebuilt from their rows; a token
that is missing, expired or too close to expiry, or minted under another secret, is replaced.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import psycopg

from ..vendors.http import ProviderAuthError, ProviderHTTPError
from ..observe.events import DeadLetter, Event, Stage, record_lead_events, send_to_dlq
from ..security.consent import build_token, consent_secret, consent_url, mint_many
from ..vendors.instantly import ChunkResult, InstantlyChunkError, InstantlyLead, InstantlyResource

STAGE = Stage.INSTANTLY_CAMPAIGN_LEADS
#: A link that dies within this long after sending is not worth mailing: mint a fresh one.
DEFAULT_MIN_TOKEN_VALIDITY = timedelta(days=1)

ConnectionFactory = Callable[[], AbstractContextManager[psycopg.Connection]]

_WITHDRAW_SQL = """
UPDATE campaign_sends cs
SET status = 'failed',
    error = CASE WHEN l.campaign_status = 'do_not_contact' THEN 'withdrawn before push: do_not_contact'
                 ELSE 'withdrawn before push: email suppressed' END
FROM leads l
WHERE cs.batch_date = %(batch_date)s AND cs.status = 'queued' AND l.id = cs.lead_id
  AND (l.campaign_status = 'do_not_contact'
       OR EXISTS (SELECT 1 FROM suppression_list s
                  WHERE s.channel = 'email' AND s.value = l.email
                    AND (s.expires_at IS NULL OR s.expires_at > now())))
"""

_PENDING_SQL = """
SELECT cs.lead_id, cs.campaign_id, t.id, t.lead_id, t.expires_at, t.nonce_hash,
       l.email, l.first_name, l.last_name, l.property_address, l.property_city, l.property_state
FROM campaign_sends cs
JOIN leads l ON l.id = cs.lead_id
LEFT JOIN consent_tokens t ON t.id = cs.consent_token_id AND t.used_at IS NULL
WHERE cs.batch_date = %s AND cs.status = 'queued'
ORDER BY cs.campaign_id, l.lead_score DESC NULLS LAST, cs.lead_id
"""

_RETOKEN_SQL = """
UPDATE campaign_sends cs SET consent_token_id = t.token_id
FROM unnest(%s::uuid[], %s::uuid[]) AS t(lead_id, token_id)
WHERE cs.batch_date = %s AND cs.lead_id = t.lead_id
"""

_MARK_PUSHED_SQL = """
UPDATE campaign_sends SET status = 'pushed', pushed_at = %s, error = NULL
WHERE batch_date = %s AND lead_id = ANY(%s) AND status = 'queued'
"""

_MARK_ERROR_SQL = "UPDATE campaign_sends SET error = %s WHERE batch_date = %s AND lead_id = ANY(%s)"


@dataclass
class PendingSend:
    """A queued send with what Instantly needs; ``token`` is filled by :func:`attach_tokens`."""

    lead_id: uuid.UUID
    campaign_id: str
    token_id: uuid.UUID | None
    token_lead_id: uuid.UUID | None
    token_expires_at: datetime | None
    token_nonce_hash: str | None
    email: str
    first_name: str | None
    last_name: str | None
    property_address: str | None
    property_city: str | None
    property_state: str | None
    token: str | None = None


@dataclass
class DayPush:
    """What pushing one batch date did."""

    batch_date: date
    pending: int = 0
    pushed: int = 0
    withdrawn: int = 0
    tokens_reminted: int = 0
    chunks: int = 0
    leads_uploaded: int = 0
    already_in_campaign: int = 0
    invalid_emails: int = 0
    unpushed: int = 0
    retries: int = 0
    errors: list[str] = field(default_factory=list)
    stop: bool = False  # the provider is unusable for now: later dates would fail the same way


def withdraw_uncontactable(conn: psycopg.Connection, batch_date: date) -> int:
    """Mark queued sends whose lead opted out since selection as not to be sent."""
    return conn.execute(_WITHDRAW_SQL, {"batch_date": batch_date}).rowcount


def pending_sends(conn: psycopg.Connection, batch_date: date) -> list[PendingSend]:
    """The date's sends that have not reached Instantly, grouped by campaign, best score first."""
    return [PendingSend(*row) for row in conn.execute(_PENDING_SQL, (batch_date,))]


def attach_tokens(
    conn: psycopg.Connection,
    sends: Sequence[PendingSend],
    *,
    batch_date: date,
    now: datetime,
    min_validity: timedelta = DEFAULT_MIN_TOKEN_VALIDITY,
) -> int:
    """Give every send a usable token: rebuilt from its row, or freshly minted. Returns how many minted."""
    secret = consent_secret()
    stale: list[PendingSend] = []
    for send in sends:
        if send.token_id is None or send.token_expires_at < now + min_validity:
            stale.append(send)
            continue
        rebuilt = build_token(send.token_id, send.token_lead_id, send.token_expires_at, secret=secret)
        if rebuilt.nonce_hash != send.token_nonce_hash:  # minted under a secret since rotated
            stale.append(send)
            continue
        send.token = rebuilt.token
    if stale:
        minted = mint_many(conn, [s.lead_id for s in stale], now=now, batch_date=batch_date, secret=secret)
        for send, token in zip(stale, minted, strict=True):
            send.token = token.token
        conn.execute(_RETOKEN_SQL, ([s.lead_id for s in stale], [t.token_id for t in minted], batch_date))
    return len(stale)


def to_instantly_lead(send: PendingSend, consent_base_url: str) -> InstantlyLead:
    """The lead as Instantly gets it; campaign copy stays in Instantly, we only supply variables."""
    variables = {
        "consent_url": consent_url(consent_base_url, send.token or ""),
        "lead_id": str(send.lead_id),
        "property_address": send.property_address,
        "property_city": send.property_city,
        "property_state": send.property_state,
    }
    return InstantlyLead(
        email=send.email,
        first_name=send.first_name,
        last_name=send.last_name,
        custom_variables={k: v for k, v in variables.items() if v is not None},
    )


def chunks_by_campaign(sends: Sequence[PendingSend], size: int) -> Iterator[tuple[str, list[PendingSend]]]:
    """(campaign, ≤ size sends) in order; ``sends`` must already be sorted by campaign."""
    for campaign, group in itertools.groupby(sends, key=lambda s: s.campaign_id):
        members = list(group)
        for start in range(0, len(members), size):
            yield campaign, members[start : start + size]


def record_chunk(
    conn: psycopg.Connection,
    chunk: Sequence[PendingSend],
    result: ChunkResult,
    *,
    batch_date: date,
    campaign: str,
    now: datetime,
    run_id: str | None,
) -> None:
    """Instantly confirmed the chunk: its rows are pushed, each with one ``email_sent`` event."""
    lead_ids = [s.lead_id for s in chunk]
    conn.execute(_MARK_PUSHED_SQL, (now, batch_date, lead_ids))
    record_lead_events(
        conn, Event.EMAIL_SENT, stage=STAGE, lead_ids=lead_ids, payloads=[{"campaign_id": campaign}] * len(lead_ids),
        run_id=run_id, partition_key=batch_date.isoformat(),
    )
    if result.invalid_email_count:
        # Instantly refused some addresses; no retry will change that, so a human looks at them.
        send_to_dlq(conn, STAGE, [DeadLetter(
            reason=f"instantly rejected {result.invalid_email_count} email(s) as invalid",
            source_ref=f"{batch_date.isoformat()}:{campaign}",
            payload={"lead_ids": [str(lead) for lead in lead_ids]},
        )], run_id=run_id)


def _failure_summary(exc: InstantlyChunkError) -> tuple[str, bool]:
    """(short error for the rows, whether to stop pushing anything else).

    Bodies are not stored: they can echo the request. A 4xx other than 429/401/403 concerns this
    campaign (e.g. an unknown campaign id): skip it, keep going with the others.
    """
    cause = exc.__cause__
    if isinstance(cause, ProviderHTTPError):
        stop = isinstance(cause, ProviderAuthError) or cause.status_code == 429 or cause.status_code >= 500
        return f"instantly HTTP {cause.status_code} after {exc.retries} retries", stop
    return f"instantly {type(cause).__name__ if cause else 'error'} after {exc.retries} retries", True


def push_day(
    connection: ConnectionFactory,
    instantly: InstantlyResource,
    batch_date: date,
    *,
    consent_base_url: str,
    now: datetime,
    run_id: str | None = None,
    min_validity: timedelta = DEFAULT_MIN_TOKEN_VALIDITY,
) -> DayPush:
    """Push ``batch_date``'s queued sends; each confirmed chunk is committed on its own."""
    outcome = DayPush(batch_date)
    with connection() as conn:
        outcome.withdrawn = withdraw_uncontactable(conn, batch_date)
        sends = pending_sends(conn, batch_date)
        outcome.tokens_reminted = attach_tokens(conn, sends, batch_date=batch_date, now=now, min_validity=min_validity)
    outcome.pending = len(sends)
    failed_campaigns: set[str] = set()
    for campaign, chunk in chunks_by_campaign(sends, instantly.chunk_size):
        if campaign in failed_campaigns:
            continue
        try:
            result = instantly.add_leads(leads=[to_instantly_lead(s, consent_base_url) for s in chunk],
                                         campaign_id=campaign, skip_if_in_campaign=True)
        except InstantlyChunkError as exc:
            error, stop = _failure_summary(exc)
            outcome.errors.append(f"campaign {campaign}: {error}")
            outcome.retries += exc.retries
            with connection() as conn:
                conn.execute(_MARK_ERROR_SQL, (error, batch_date, [s.lead_id for s in chunk]))
            failed_campaigns.add(campaign)
            if stop:
                outcome.stop = True
                break
            continue
        with connection() as conn:
            for confirmed in result.chunks:
                record_chunk(conn, chunk[confirmed.start : confirmed.stop], confirmed,
                             batch_date=batch_date, campaign=campaign, now=now, run_id=run_id)
        outcome.pushed += result.leads_sent
        outcome.chunks += len(result.chunks)
        outcome.retries += result.retries
        outcome.leads_uploaded += result.leads_uploaded
        outcome.already_in_campaign += result.already_in_campaign
        outcome.invalid_emails += result.invalid_email_count
    outcome.unpushed = outcome.pending - outcome.pushed
    return outcome
