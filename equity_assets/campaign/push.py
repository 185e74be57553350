"""Pushing a batch date's queued sends to Instantly, resumable chunk by chunk.

Only ``campaign_sends`` rows still ``queued`` are pushed, so a re-run (or Dagster's "re-execute
from failure") sends just what did not reach Instantly before. Each chunk of at most 1,000 leads
(one broker's campaign per chunk) is one ``add_leads`` call, a few in flight at once; the leads
Instantly took turn ``pushed`` (with ``email_sent`` events), and their leads ``active``, as soon as
it answers. A lead it
refused (an invalid address) turns ``failed`` with the reason, gets its own dead letter, and its
address is suppressed so it is not picked again. When the counts Instantly returns cannot tell
which leads it refused, those leads are sent again one by one (safe with ``skip_if_in_campaign``),
which answers unambiguously.
A chunk whose fate is unknown (a timeout may have landed) stays ``queued``: re-pushing it is safe
for the same reason.

As the sends are read, a row whose lead became suppressed or ``do_not_contact`` since selection is
withdrawn (``failed`` with the reason) instead of pushed, and consent tokens are rebuilt from their
rows; a token that is missing, expired or too close to expiry, or minted under another secret, is
replaced.
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import psycopg

from ..vendors.http import ProviderAuthError, ProviderHTTPError
from ..observe.events import DeadLetter, Event, Stage, record_lead_events, send_to_dlq
from ..security.consent import build_token, consent_secret, consent_url, mint_many
from ..vendors.instantly import AddLeadsResult, ChunkResult, InstantlyChunkError, InstantlyLead, InstantlyResource

STAGE = Stage.INSTANTLY_CAMPAIGN_LEADS
#: A link that dies within this long after sending is not worth mailing: mint a fresh one.
DEFAULT_MIN_TOKEN_VALIDITY = timedelta(days=1)

ConnectionFactory = Callable[[], AbstractContextManager[psycopg.Connection]]

# Why a queued send of lead `l` must not leave (NULL: it may).
_WITHDRAWAL = """
CASE WHEN l.campaign_status = 'do_not_contact' THEN 'withdrawn before push: do_not_contact'
     WHEN EXISTS (SELECT 1 FROM suppression_list s
                  WHERE s.channel = 'email' AND s.value = l.email
                    AND (s.expires_at IS NULL OR s.expires_at > now()))
       THEN 'withdrawn before push: email suppressed'
END"""

_WITHDRAW_SQL = f"""
UPDATE campaign_sends cs SET status = 'failed', error = {_WITHDRAWAL}
FROM leads l
WHERE cs.batch_date = %(batch_date)s AND cs.status = 'queued' AND l.id = cs.lead_id AND {_WITHDRAWAL} IS NOT NULL
"""

_WITHDRAW_LISTED_SQL = """
UPDATE campaign_sends cs SET status = 'failed', error = w.reason
FROM unnest(%s::uuid[], %s::text[]) AS w(lead_id, reason)
WHERE cs.batch_date = %s AND cs.lead_id = w.lead_id AND cs.status = 'queued'
"""

_PENDING_SQL = f"""
SELECT cs.lead_id, cs.campaign_id, t.id, t.lead_id, t.expires_at, t.nonce_hash,
       l.email, l.first_name, l.last_name, l.property_address, l.property_city, l.property_state,
       {_WITHDRAWAL} AS withdrawal
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
UPDATE campaign_sends SET status = 'pushed', pushed_at = %s, error = NULL, updated_at = now()
WHERE batch_date = %s AND lead_id = ANY(%b) AND status = 'queued'
RETURNING lead_id
"""

# queued → active once Instantly has the lead; a reply that arrived first (``replied``) or an opt-out
# (``do_not_contact``) is left as it is. Setting both columns spares their triggers a call per lead.
_ACTIVATE_SQL = """
UPDATE leads SET campaign_status = 'active', added_to_campaign_at = coalesce(added_to_campaign_at, now()),
                 updated_at = now()
WHERE id = ANY(%b) AND campaign_status = 'queued'
"""

_MARK_ERROR_SQL = "UPDATE campaign_sends SET error = %s WHERE batch_date = %s AND lead_id = ANY(%s)"

_MARK_REJECTED_SQL = """
UPDATE campaign_sends SET status = 'failed', error = %s
WHERE batch_date = %s AND lead_id = %s AND status = 'queued'
"""

# An address Instantly refuses will be refused again: off the contactable set for good.
_SUPPRESS_REJECTED_SQL = """
INSERT INTO suppression_list (channel, value, reason, source, lead_id)
VALUES ('email', %s, %s, 'provider', %s)
ON CONFLICT (channel, value) DO NOTHING
"""
_UNVERIFY_EMAIL_SQL = "UPDATE leads SET email_verified = false WHERE id = %s AND email = %s"

INVALID_REASON = "instantly rejected the email address as invalid"
REFUSED_REASON = "instantly did not take the lead (not created, not already in the campaign)"
DUPLICATE_REASON = "same email address as another lead of the upload"


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
    withdrawal: str | None  # why it must not leave after all (suppressed, do_not_contact), or None
    token: str | None = None


@dataclass
class DayPush:
    """What pushing one batch date did."""

    batch_date: date
    pending: int = 0
    pushed: int = 0
    rejected: int = 0
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
    rejected_credentials: bool = False  # a configuration error: retrying the run cannot help
    #: where the time went: until the first upload, the uploads; of which reading the sends with
    #: their tokens, recording the answers (thread-seconds) and withdrawing (all overlap the uploads)
    phases: dict[str, float] = field(default_factory=dict)

    def add_answers(self, tally: DayPush) -> None:
        """Count a recorded chunk's answers (``tally``, filled by :func:`record_chunk`) in this day."""
        for name in ("pushed", "rejected", "chunks", "leads_uploaded", "already_in_campaign", "invalid_emails",
                     "retries"):
            setattr(self, name, getattr(self, name) + getattr(tally, name))
        self.errors.extend(tally.errors)
        self.stop = self.stop or tally.stop
        self.rejected_credentials = self.rejected_credentials or tally.rejected_credentials


def withdraw_uncontactable(conn: psycopg.Connection, batch_date: date) -> int:
    """Mark queued sends whose lead opted out since selection as not to be sent."""
    return conn.execute(_WITHDRAW_SQL, {"batch_date": batch_date}).rowcount


def withdraw_sends(connection: ConnectionFactory, batch_date: date, sends: Sequence[PendingSend]) -> int:
    """Mark these queued sends (read with a ``withdrawal`` reason) as not to be sent."""
    if not sends:
        return 0
    with connection() as conn:
        return conn.execute(_WITHDRAW_LISTED_SQL,
                            ([s.lead_id for s in sends], [s.withdrawal for s in sends], batch_date)).rowcount


def stream_pending_sends(conn: psycopg.Connection, batch_date: date) -> Iterator[PendingSend]:
    """The date's sends that have not reached Instantly, grouped by campaign, best score first;
    read a page at a time (a server-side cursor in ``conn``'s transaction), so the first chunk can
    leave before the last send is read."""
    with conn.cursor(name="pending_sends") as cur:
        cur.itersize = 2000
        cur.execute(_PENDING_SQL, (batch_date,))
        for row in cur:
            yield PendingSend(*row)


def attach_tokens(
    connection: ConnectionFactory,
    sends: Sequence[PendingSend],
    *,
    batch_date: date,
    now: datetime,
    min_validity: timedelta = DEFAULT_MIN_TOKEN_VALIDITY,
) -> int:
    """Give every send a usable token: rebuilt from its row, or freshly minted (committed in a
    transaction of its own before the caller sends the link). Returns how many minted."""
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
        with connection() as conn:
            minted = mint_many(conn, [s.lead_id for s in stale], now=now, batch_date=batch_date, secret=secret)
            conn.execute(_RETOKEN_SQL, ([s.lead_id for s in stale], [t.token_id for t in minted], batch_date))
        for send, token in zip(stale, minted, strict=True):
            send.token = token.token
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


def chunks_by_campaign(sends: Iterable[PendingSend], size: int) -> Iterator[tuple[str, list[PendingSend]]]:
    """(campaign, ≤ size sends) in order, as they come; ``sends`` must be grouped by campaign."""
    for campaign, group in itertools.groupby(sends, key=lambda s: s.campaign_id):
        while chunk := list(itertools.islice(group, size)):
            yield campaign, chunk


@dataclass
class ChunkVerdict:
    """What Instantly did with each lead of a chunk: taken, refused (with why), or not yet known."""

    accepted: list[PendingSend] = field(default_factory=list)
    rejected: list[tuple[PendingSend, str]] = field(default_factory=list)
    unsure: list[PendingSend] = field(default_factory=list)


def sort_chunk(chunk: Sequence[PendingSend], result: ChunkResult) -> ChunkVerdict:
    """Split a confirmed chunk by Instantly's answer.

    Created leads were taken. Of the others, a second copy of an address already in the chunk is
    a duplicate; the rest were either already in the campaign (taken earlier) or refused. The
    counts settle it when only one of the two happened; otherwise the leads stay `unsure`.
    """
    verdict = ChunkVerdict()
    created = result.created_positions()
    if created is None:  # no per-lead answer: trust the counts only when nothing was refused
        if result.invalid_email_count or result.duplicate_email_count:
            verdict.unsure.extend(chunk)
        else:
            verdict.accepted.extend(chunk)
        return verdict
    seen: set[str] = set()
    rest: list[PendingSend] = []
    for position, send in enumerate(chunk):
        address = send.email.strip().lower()
        if position in created:
            verdict.accepted.append(send)
        elif address in seen:
            verdict.rejected.append((send, DUPLICATE_REASON))
        else:
            rest.append(send)
        seen.add(address)
    if not result.invalid_email_count:
        verdict.accepted.extend(rest)
    elif result.invalid_email_count == len(rest):
        verdict.rejected.extend((send, INVALID_REASON) for send in rest)
    else:
        verdict.unsure.extend(rest)
    return verdict


def probe_one(instantly: InstantlyResource, send: PendingSend, campaign: str, consent_base_url: str) -> str | None:
    """Send one lead alone: None when Instantly has it (new or already there), else why not."""
    (answer,) = instantly.add_leads(leads=[to_instantly_lead(send, consent_base_url)], campaign_id=campaign,
                                    skip_if_in_campaign=True).chunks
    if answer.leads_uploaded or answer.already_in_campaign or answer.skipped_count:
        return None
    return INVALID_REASON if answer.invalid_email_count else REFUSED_REASON


def settle_unsure(
    instantly: InstantlyResource, verdict: ChunkVerdict, campaign: str, consent_base_url: str
) -> InstantlyChunkError | None:
    """Resolve `unsure` leads one call each; on a failed call the rest stay unsure (still queued)."""
    while verdict.unsure:
        send = verdict.unsure[0]
        try:
            reason = probe_one(instantly, send, campaign, consent_base_url)
        except InstantlyChunkError as exc:
            return exc
        verdict.unsure.pop(0)
        if reason is None:
            verdict.accepted.append(send)
        else:
            verdict.rejected.append((send, reason))
    return None


def record_verdict(
    conn: psycopg.Connection,
    verdict: ChunkVerdict,
    *,
    batch_date: date,
    campaign: str,
    now: datetime,
    run_id: str | None,
) -> None:
    """Taken leads' sends turn pushed (one ``email_sent`` event each) and the leads active; each
    refused lead's send turns failed, gets its own dead letter, and its address is suppressed and
    no longer counts as verified."""
    lead_ids = [s.lead_id for s in verdict.accepted]
    if lead_ids:
        # Unkeyed events for the sends this statement turned pushed: queued → pushed happens once
        # per send (and a lead has one send), so no key claim per lead is needed.
        pushed = [row[0] for row in conn.execute(_MARK_PUSHED_SQL, (now, batch_date, lead_ids))]
        if pushed:
            conn.execute(_ACTIVATE_SQL, (pushed,))
        record_lead_events(
            conn, Event.EMAIL_SENT, stage=STAGE, lead_ids=pushed,
            payload={"campaign_id": campaign}, run_id=run_id, partition_key=batch_date.isoformat(),
            keyed=False,
        )
    for send, reason in verdict.rejected:
        conn.execute(_MARK_REJECTED_SQL, (reason, batch_date, send.lead_id))
        if reason != DUPLICATE_REASON:  # the address itself is fine: its other lead got the email
            conn.execute(_SUPPRESS_REJECTED_SQL, (send.email, reason, send.lead_id))
            conn.execute(_UNVERIFY_EMAIL_SQL, (send.lead_id, send.email))
    send_to_dlq(conn, STAGE, [
        DeadLetter(reason=reason, source_ref=f"{batch_date.isoformat()}:{send.lead_id}",
                   payload={"lead_id": str(send.lead_id), "campaign_id": campaign, "batch_date": batch_date.isoformat()})
        for send, reason in verdict.rejected
    ], run_id=run_id)


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


@dataclass
class ChunkPush:
    """One chunk's trip to Instantly, as a worker thread saw it; recorded by the caller's thread."""

    campaign: str
    chunk: list[PendingSend]
    verdicts: list[ChunkVerdict] = field(default_factory=list)
    result: AddLeadsResult | None = None
    error: InstantlyChunkError | None = None  # the upload itself failed: the chunk's fate is unknown
    probe_error: InstantlyChunkError | None = None  # a one-by-one probe failed: `unsure` leads stay queued


class ChunkPusher:
    """Sends chunks on worker threads; chunks of one campaign go one at a time.

    After a failure, the campaign's later chunks are skipped (they would fail the same way), and a
    failure that makes the provider unusable (auth, 429 after retries, 5xx, transport) skips every
    chunk not yet started.
    """

    def __init__(self, instantly: InstantlyResource, consent_base_url: str) -> None:
        self.instantly = instantly
        self.consent_base_url = consent_base_url
        self.stop = threading.Event()
        self._failed: set[str] = set()
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    def _campaign_lock(self, campaign: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(campaign, threading.Lock())

    def push(self, campaign: str, chunk: list[PendingSend]) -> ChunkPush | None:
        """Upload one chunk and sort Instantly's answer; None when it was skipped."""
        with self._campaign_lock(campaign):
            if self.stop.is_set() or campaign in self._failed:
                return None
            sent = ChunkPush(campaign, chunk)
            try:
                sent.result = self.instantly.add_leads(
                    leads=[to_instantly_lead(s, self.consent_base_url) for s in chunk],
                    campaign_id=campaign, skip_if_in_campaign=True,
                )
            except InstantlyChunkError as exc:
                sent.error = exc
                self._failed_with(campaign, exc)
                return sent
            for confirmed in sent.result.chunks:
                verdict = sort_chunk(chunk[confirmed.start : confirmed.stop], confirmed)
                probe_error = settle_unsure(self.instantly, verdict, campaign, self.consent_base_url)
                if probe_error is not None:
                    sent.probe_error = probe_error
                    self._failed_with(campaign, probe_error)
                sent.verdicts.append(verdict)
            return sent

    def _failed_with(self, campaign: str, exc: InstantlyChunkError) -> None:
        self._failed.add(campaign)
        if _failure_summary(exc)[1]:
            self.stop.set()


def record_chunk(
    conn: psycopg.Connection, sent: ChunkPush, outcome: DayPush, *, batch_date: date, now: datetime,
    run_id: str | None,
) -> None:
    """Write one chunk's outcome (pushed / failed / still queued with the error) and count it."""
    if sent.error is not None:
        error, stop = _failure_summary(sent.error)
        outcome.rejected_credentials = outcome.rejected_credentials or isinstance(sent.error.__cause__, ProviderAuthError)
        outcome.errors.append(f"campaign {sent.campaign}: {error}")
        outcome.retries += sent.error.retries
        conn.execute(_MARK_ERROR_SQL, (error, batch_date, [s.lead_id for s in sent.chunk]))
        outcome.stop = outcome.stop or stop
        return
    for verdict in sent.verdicts:
        record_verdict(conn, verdict, batch_date=batch_date, campaign=sent.campaign, now=now, run_id=run_id)
        outcome.pushed += len(verdict.accepted)
        outcome.rejected += len(verdict.rejected)
        if sent.probe_error is not None and verdict.unsure:
            error, _ = _failure_summary(sent.probe_error)
            conn.execute(_MARK_ERROR_SQL, (error, batch_date, [s.lead_id for s in verdict.unsure]))
    if sent.probe_error is not None:
        error, stop = _failure_summary(sent.probe_error)
        outcome.errors.append(f"campaign {sent.campaign}: {error}")
        outcome.retries += sent.probe_error.retries
        outcome.stop = outcome.stop or stop
    if sent.result is not None:
        outcome.chunks += len(sent.result.chunks)
        outcome.retries += sent.result.retries
        outcome.leads_uploaded += sent.result.leads_uploaded
        outcome.already_in_campaign += sent.result.already_in_campaign
        outcome.invalid_emails += sent.result.invalid_email_count


class AnswerRecorder:
    """Commits each finished chunk's answers on threads and connections of their own, so the
    uploads and the reading of the next sends go on meanwhile (two at once: activating a chunk's
    leads rewrites 1,000 wide rows, about as long as an upload takes). No wait for the WAL flush:
    an answer a crash loses leaves its sends queued, and the re-run pushes them again, which
    Instantly skips (already in the campaign). A chunk's counts join the outcome once its answers
    are committed. A recording that fails sets ``stop``: nothing more is uploaded, and the error is
    raised by :func:`settle`."""

    RECORDERS = 2

    def __init__(self, connection: ConnectionFactory, outcome: DayPush, *, stop: threading.Event, now: datetime,
                 run_id: str | None) -> None:
        self.connection = connection
        self.outcome = outcome
        self.stop = stop
        self.now = now
        self.run_id = run_id
        self.seconds = 0.0
        self._counting = threading.Lock()
        self.thread = ThreadPoolExecutor(max_workers=self.RECORDERS, thread_name_prefix="instantly-record")

    def record(self, sent: ChunkPush | None) -> Future[None] | None:
        """Queue one chunk's answers for recording."""
        return None if sent is None else self.thread.submit(self._record, sent)

    def _record(self, sent: ChunkPush) -> None:
        mark = time.perf_counter()
        tally = DayPush(self.outcome.batch_date)
        try:
            with self.connection() as conn:
                conn.execute("SET LOCAL synchronous_commit = off")
                record_chunk(conn, sent, tally, batch_date=tally.batch_date, now=self.now, run_id=self.run_id)
        except BaseException:
            self.stop.set()
            raise
        with self._counting:
            self.outcome.add_answers(tally)
            self.seconds += time.perf_counter() - mark


def settle(upload: Future[Future[None] | None]) -> None:
    """Wait for an upload and for the recording of its answers; their errors are raised here."""
    recording = upload.result()
    if recording is not None:
        recording.result()


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
    """Push ``batch_date``'s queued sends, ``instantly.max_concurrency`` chunks in flight.

    The sends are read a page at a time and each chunk leaves as soon as it is read and has its
    tokens, while the answers of earlier chunks are recorded (:class:`AnswerRecorder`); sends that
    must not leave after all are withdrawn once read. The first upload goes alone: a wrong key or a
    provider that is down is found with one call, not with one per thread; after a failure that
    makes the provider unusable, the remaining chunks are only counted (their sends stay queued).
    """
    outcome = DayPush(batch_date)
    started = time.perf_counter()
    first_upload_at: float | None = None
    reading = 0.0
    withdrawn: list[PendingSend] = []
    pusher = ChunkPusher(instantly, consent_base_url)
    recorder = AnswerRecorder(connection, outcome, stop=pusher.stop, now=now, run_id=run_id)
    pool = ThreadPoolExecutor(max_workers=instantly.max_concurrency, thread_name_prefix="instantly-push")

    def upload(campaign: str, chunk: list[PendingSend]) -> Future[None] | None:
        return recorder.record(pusher.push(campaign, chunk))

    def deliverable(sends: Iterable[PendingSend]) -> Iterator[PendingSend]:
        for send in sends:
            if send.withdrawal:
                withdrawn.append(send)
            else:
                yield send

    uploads: list[Future[Future[None] | None]] = []
    try:
        with connection() as read:
            mark = time.perf_counter()
            for campaign, chunk in chunks_by_campaign(deliverable(stream_pending_sends(read, batch_date)),
                                                      instantly.chunk_size):
                outcome.pending += len(chunk)
                if pusher.stop.is_set():
                    continue
                outcome.tokens_reminted += attach_tokens(connection, chunk, batch_date=batch_date, now=now,
                                                         min_validity=min_validity)
                reading += time.perf_counter() - mark
                uploads.append(pool.submit(upload, campaign, chunk))
                if first_upload_at is None:
                    first_upload_at = time.perf_counter()
                    settle(uploads[0])
                mark = time.perf_counter()
        withdrawing = time.perf_counter()
        outcome.withdrawn = withdraw_sends(connection, batch_date, withdrawn)
        withdrawn_in = time.perf_counter() - withdrawing
        for sent in uploads:
            settle(sent)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        recorder.thread.shutdown(wait=True)
    outcome.unpushed = outcome.pending - outcome.pushed - outcome.rejected
    ended = time.perf_counter()
    outcome.phases = {
        "first_upload_after_s": round((first_upload_at or ended) - started, 3),
        "upload_s": round(ended - (first_upload_at or ended), 3),
        "read_s": round(reading, 3),
        "record_s": round(recorder.seconds, 3),
        "withdraw_s": round(withdrawn_in, 3),
    }
    return outcome
