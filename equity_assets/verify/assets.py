"""`verified_leads`: the verification work queue (Melissa, fallback BatchData)."""

import sys
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field

import dagster as dg
import psycopg
from pydantic import Field

from equity_assets.db.resources import PostgresResource
from equity_assets.observe.events import Event, record_event
from equity_assets.vendors.batchdata import BatchDataResource
from equity_assets.vendors.melissa import MelissaResource
from equity_assets.verify.providers import BatchDataProvider, MelissaProvider
from equity_assets.verify.router import DEFAULT_COOLDOWN_S, ProviderRouter, RoutingResult
from equity_assets.verify.store import (
    STAGE,
    DueCursor,
    WriteCounts,
    claim_due_leads,
    dead_letter,
    withdraw_later_suppressed,
    write_verdicts,
)
from equity_assets.verify.verdict import LeadToVerify, LeadVerdict

#: A concurrent writer can take a MAK between our check and our write; the write is then redone.
_WRITE_ATTEMPTS = 3


class VerifyConfig(dg.Config):
    """Run config of `verified_leads`."""

    chunk_size: int = Field(default=1000, ge=1, le=20_000, description="Leads claimed, verified and written per transaction.")
    max_age_days: int = Field(default=180, ge=1, description="A verification older than this is redone.")
    max_leads_per_run: int = Field(default=100_000, ge=1, description="Stop after this many leads; the next run goes on.")
    provider_order: list[str] = Field(
        default=["melissa", "batchdata"], description="Providers to ask, in order; the next one is asked on error or no match."
    )
    dlq_backoff_minutes: int = Field(
        default=60, ge=0, description="A lead that failed every provider is not retried for this long."
    )
    circuit_cooldown_s: float = Field(
        default=DEFAULT_COOLDOWN_S, ge=0,
        description="A provider that failed a whole chunk (down, or a 429 burst) is skipped this long, then "
        "probed with one batch; answered, it takes its share again.",
    )
    prefetch_chunks: int = Field(
        default=2, ge=0, le=8,
        description="Chunks claimed and sent to the providers ahead of the one being written. Each open chunk "
        "holds a pooled connection: PostgresResource.max_size must be at least prefetch_chunks + 1.",
    )


@dataclass
class RunTotals:
    """Counts over every chunk of one run (the materialization metadata)."""

    chunks: int = 0
    claimed: int = 0
    verified: int = 0
    no_match: int = 0
    by_provider: dict[str, int] = field(default_factory=dict)
    usable_email: int = 0
    usable_phone: int = 0
    suppressed: int = 0
    malformed_emails: int = 0
    dlq: int = 0
    merged_by_mak: int = 0
    mak_conflicts: int = 0
    held_back: int = 0

    def add(self, claimed: int, routing: RoutingResult, written: WriteCounts) -> None:
        self.chunks += 1
        self.claimed += claimed
        self.verified += written.verified
        self.no_match += written.no_match
        for provider, count in written.by_provider.items():
            self.by_provider[provider] = self.by_provider.get(provider, 0) + count
        self.usable_email += written.usable_email
        self.usable_phone += written.usable_phone
        self.suppressed += written.suppressed
        self.malformed_emails += sum(len(v.malformed_emails) for v in routing.verdicts)
        self.dlq += len(routing.unrouted)
        self.merged_by_mak += written.merged_by_mak
        self.mak_conflicts += written.mak_conflicts
        self.held_back += written.held_back


@dg.asset(
    group_name="verify",
    kinds={"python", "postgres"},
    owners=["team:data-platform"],
    deps=["deduped_leads"],
    pool=MelissaResource.pool,
    retry_policy=dg.RetryPolicy(
        max_retries=3, delay=30, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
    ),
)
def verified_leads(
    context: dg.AssetExecutionContext,
    config: VerifyConfig,
    postgres: PostgresResource,
    melissa: MelissaResource,
    batchdata: BatchDataResource,
) -> dg.MaterializeResult:
    """Verify leads that are due (never verified, or verified more than `max_age_days` ago).

    In chunks, each one transaction: claim due leads (SKIP LOCKED), ask the providers in
    `provider_order` (Melissa Personator, then BatchData skip trace on error or no match), write
    result codes, usable email/phone flags (per `verification_code_map`), MAK (a MAK another lead
    owns folds this lead into that one), birth month and provider payloads;
    DNC/TCPA phones, litigators, deceased owners and spamtraps go to `suppression_list`; leads no
    provider could answer go to `pipeline_dlq` and stay due. Fresh leads are never sent again.
    Last, a lead verified in the last day whose e-mail or phone another lead's verdict has since
    suppressed (a shared address of a deceased owner, a DNC number) stops being usable.
    Scoring and broker assignment are `scored_leads`'s, so they can be redone without the vendors.
    """
    started = time.perf_counter()
    totals, router_state = verify_due_leads(context, config, postgres, melissa, batchdata)
    with postgres.connection() as conn:
        withdrawn = withdraw_later_suppressed(conn)
    seconds = time.perf_counter() - started
    metadata = _metadata(totals, router_state, seconds) | {"usable_flags_withdrawn": withdrawn}
    context.log.info("verified_leads: %s", {k: v for k, v in metadata.items() if isinstance(v, (int, float))})
    if router_state["unavailable"]:
        # Every provider is down: fail the run so it shows, but do not retry the step at once
        # (each retry would spend every provider's retry budget again); the sensor starts the
        # next run. What was verified is committed; the failed chunk's leads are in the DLQ.
        raise dg.Failure(
            description=f"verification providers unavailable: {router_state['unavailable']}",
            metadata=metadata,
            allow_retries=False,
        )
    return dg.MaterializeResult(metadata=metadata)


def verify_due_leads(
    context: dg.AssetExecutionContext,
    config: VerifyConfig,
    postgres: PostgresResource,
    melissa: MelissaResource,
    batchdata: BatchDataResource,
) -> tuple[RunTotals, dict[str, object]]:
    """The chunk loop; returns totals and the router's end state (retries, open circuits).

    Pipelined: while chunk k is written, the next `prefetch_chunks` chunks are already claimed
    and their provider calls are in flight on worker threads. A run waits on HTTP latency far
    more than on CPU, so the overlap is most of the throughput. Chunks are written in order.
    """
    totals = RunTotals()
    cursor = DueCursor()  # forward only: a lead this run dead-letters is not claimed again by it
    claimed = 0
    providers = {"melissa": MelissaProvider(melissa), "batchdata": BatchDataProvider(batchdata)}
    in_flight: deque[_ClaimedChunk] = deque()
    router = ProviderRouter(providers, config.provider_order, cooldown_s=config.circuit_cooldown_s)
    with router, ThreadPoolExecutor(max_workers=config.prefetch_chunks + 1, thread_name_prefix="verify-route") as routing_pool:

        def fill_pipeline(number: int, room: int) -> None:
            """Claim chunks until ``room`` are in flight (each holds a pooled connection)."""
            nonlocal claimed
            while len(in_flight) < room and claimed < config.max_leads_per_run:
                if router.exhausted:
                    return
                limit = min(config.chunk_size, config.max_leads_per_run - claimed)
                chunk = _ClaimedChunk.claim(
                    postgres, config, cursor, number + len(in_flight), limit,
                    lambda leads: routing_pool.submit(router.route, leads),
                )
                if chunk is None:
                    return
                in_flight.append(chunk)
                claimed += len(chunk.leads)

        # at most prefetch_chunks + 1 chunks (transactions) are open at any moment
        fill_pipeline(0, room=config.prefetch_chunks + 1)
        while in_flight:
            current = in_flight.popleft()
            try:
                routing = current.routing.result()
                fill_pipeline(current.number + 1, room=config.prefetch_chunks)
                busy = [lead.id for chunk in in_flight for lead in chunk.leads]
                written = _write_with_retry(current.conn, routing.verdicts, config, context.run.run_id, busy)
                dead_letter(current.conn, routing.unrouted, run_id=context.run.run_id)
                _record_chunk_events(current.conn, context, current.number, written, routing, current.started)
            except BaseException as exc:
                current.close(exc)
                while in_flight:
                    in_flight.popleft().close(exc)
                raise
            current.close(None)
            totals.add(len(current.leads), routing, written)
            fill_pipeline(current.number + 1, room=config.prefetch_chunks + 1)
        state = {"retries": router.retries, "unavailable": dict(router.open_circuits) if router.exhausted else {}}
        state["open_circuits"] = dict(router.open_circuits)
        state["circuit_trips"] = dict(router.circuit_trips)
    return totals, state


@dataclass
class _ClaimedChunk:
    """Claimed leads, the open transaction holding their row locks, and their routing in flight."""

    number: int
    leads: list[LeadToVerify]
    conn: psycopg.Connection
    routing: Future[RoutingResult]
    started: float
    _stack: ExitStack

    @classmethod
    def claim(
        cls,
        postgres: PostgresResource,
        config: VerifyConfig,
        cursor: DueCursor,
        number: int,
        limit: int,
        route: Callable[[list[LeadToVerify]], Future[RoutingResult]],
    ) -> "_ClaimedChunk | None":
        """Open a transaction, lock up to ``limit`` due leads and start routing them; None when none are due."""
        started = time.perf_counter()
        stack = ExitStack()
        try:
            conn = stack.enter_context(postgres.connection())
            leads = claim_due_leads(
                conn, cursor, limit=limit, max_age_days=config.max_age_days,
                backoff_minutes=config.dlq_backoff_minutes,
            )
        except BaseException:
            stack.__exit__(*sys.exc_info())
            raise
        if not leads:
            stack.close()
            return None
        return cls(number, leads, conn, route(leads), started, stack)

    def close(self, error: BaseException | None) -> None:
        """Commit (no error) or roll back, and give the connection back to the pool."""
        if error is None:
            self._stack.close()
        else:
            self._stack.__exit__(type(error), error, error.__traceback__)


def _write_with_retry(
    conn: psycopg.Connection, verdicts: list[LeadVerdict], config: VerifyConfig, run_id: str, busy: list[str]
) -> WriteCounts:
    """Write the chunk's verdicts in a savepoint, redone if a concurrent writer took a MAK first."""
    for attempt in range(1, _WRITE_ATTEMPTS + 1):
        try:
            with conn.transaction():
                return write_verdicts(conn, verdicts, run_id=run_id, busy=busy)
        except psycopg.errors.UniqueViolation:
            if attempt == _WRITE_ATTEMPTS:
                raise
    raise AssertionError("unreachable")


def _record_chunk_events(
    conn: psycopg.Connection,
    context: dg.AssetExecutionContext,
    chunk: int,
    written: WriteCounts,
    routing: RoutingResult,
    started: float,
) -> None:
    """`email_verified` / `phone_verified` funnel events for one chunk (idempotent per run attempt)."""
    duration_ms = int((time.perf_counter() - started) * 1000)
    payload = {"chunk": chunk, "verified": written.verified, "dlq": len(routing.unrouted), "matched": routing.matched}
    for event_type, count in ((Event.EMAIL_VERIFIED, written.usable_email), (Event.PHONE_VERIFIED, written.usable_phone)):
        record_event(
            conn, event_type, stage=STAGE, count=count, duration_ms=duration_ms, run_id=context.run.run_id,
            payload=payload, idempotency_key=f"{STAGE}:{_attempt_key(context)}:{chunk}:{event_type}",
        )


def _attempt_key(context: dg.AssetExecutionContext) -> str:
    """Run id plus retry number: a retried step writes its own events instead of colliding."""
    return f"{context.run.run_id}:{context.retry_number}"


def _metadata(
    totals: RunTotals, router_state: dict[str, object], seconds: float
) -> dict[str, object]:
    metadata: dict[str, object] = {
        "leads_verified": totals.verified,
        "leads_claimed": totals.claimed,
        "no_match": totals.no_match,
        "usable_email": totals.usable_email,
        "usable_phone": totals.usable_phone,
        "suppressed": totals.suppressed,
        "malformed_emails": totals.malformed_emails,
        "dlq": totals.dlq,
        "merged_by_mak": totals.merged_by_mak,
        "mak_conflicts": totals.mak_conflicts,
        "held_back_for_twin": totals.held_back,
        "chunks": totals.chunks,
        "retries": int(router_state["retries"]),  # type: ignore[call-overload]
        "duration_s": round(seconds, 3),
        "leads_per_s": round(totals.verified / seconds, 1) if seconds > 0 else 0.0,
    }
    for provider in ("melissa", "batchdata"):
        metadata[f"verified_by_{provider}"] = totals.by_provider.get(provider, 0)
    if router_state["open_circuits"]:
        metadata["providers_unavailable"] = dg.MetadataValue.json(router_state["open_circuits"])
    if router_state["circuit_trips"]:  # opened during the run, even if they closed again
        metadata["circuit_trips"] = dg.MetadataValue.json(router_state["circuit_trips"])
    return metadata
