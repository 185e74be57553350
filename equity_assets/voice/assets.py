"""Voice assets: `voice_calls` (gate → number → VAPI) and `call_outcomes` (VAPI reports → effects)."""

# No `from __future__ import annotations`: Dagster reads the config and context annotations.
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import dagster as dg
from pydantic import Field

from ..db.resources import PostgresResource
from ..vendors.vapi import VapiError, VapiResource
from . import calls as store
from .gate import DEFAULT_MIN_GAP
from ..observe.inbox import DEFAULT_MAX_TRIES, drain, due_event_ids
from .inbox import ignore_unhandled, process_event
from .notify import DEFAULT_MAX_TRIES as NOTIFY_MAX_TRIES
from .notify import deliver_due
from .outcomes import PROVIDER, STAGE, OutcomeSettings
from .planner import CallCaps, plan_calls

OWNERS = ["team:data-platform"]


def utc_now() -> datetime:
    """The moment the gate judges (one place, so tests can pin it)."""
    return datetime.now(timezone.utc)


class VoiceCallsConfig(dg.Config):
    """Run config of `voice_calls`."""

    candidates: int = Field(default=2000, ge=1, description="At most this many leads read by the pre-filter.")
    per_broker_concurrency: int = Field(default=10, ge=1, description="Open calls per broker at most.")
    global_concurrency: int = Field(default=100, ge=1, description="Open calls in all at most.")
    calls_per_tick: int = Field(default=25, ge=0, description="Calls placed per run (spreads calls over the window).")
    min_gap_hours: float = Field(default=DEFAULT_MIN_GAP.total_seconds() / 3600, ge=0,
                                 description="Minimum hours between two attempts on one lead.")


@dg.asset(
    deps=[dg.AssetKey("email_replies")],
    group_name="voice",
    kinds={"postgres"},
    owners=OWNERS,
    pool="vapi",
)
def voice_calls(context: dg.AssetExecutionContext, config: VoiceCallsConfig, postgres: PostgresResource,
                vapi: VapiResource) -> dg.MaterializeResult:
    """AI voice calls placed through VAPI: leads that replied with interest and gave written consent,
    passed through the compliance gate (consent for the dialled number, suppression, attempts, the
    calling window in every zone the person may be in, state rules), given a local-presence number
    from their broker's pool, within the per-broker and global concurrency caps. Each call is
    reserved (``calls`` row, attempt counted) before VAPI is asked, with an idempotency key, so a
    re-run or a crash never calls a lead twice for one attempt. Refusals are counted by reason.
    """
    started = time.perf_counter()
    run_id = context.run.run_id
    now = utc_now()
    placed = failed = 0
    outcomes: Counter[str] = Counter()
    recovered = _recover_lost_reports(context, postgres, vapi, now)
    with postgres.connection() as conn:
        leftovers = store.unplaced_reservations(conn, now)
    for res in leftovers:  # reserved by a run that died before VAPI answered
        ok = _place(context, postgres, vapi, res, run_id, resume=True)
        placed += ok is True
        failed += ok is False
    with postgres.connection() as conn:
        candidates = store.load_candidates(conn, now, config.candidates)
        by_broker, total_open = store.open_calls(conn, now)
    caps = CallCaps(per_broker=config.per_broker_concurrency, global_open=config.global_concurrency,
                    budget=config.calls_per_tick, min_gap=timedelta(hours=config.min_gap_hours))
    plan = plan_calls(candidates, now, open_by_broker=by_broker, open_total=total_open, caps=caps)
    for facts in plan.chosen:
        with postgres.connection() as conn:
            res = store.reserve_call(conn, facts, now)
        if isinstance(res, str):
            outcomes[res] += 1
            continue
        ok = _place(context, postgres, vapi, res, run_id)
        placed += ok is True
        failed += ok is False
    context.log.info("voice calls: %d placed, %d failed, refusals %s, deferred %s", placed, failed,
                     dict(plan.refusals), dict(plan.deferred))
    metadata = {
        "candidates": len(candidates),
        "allowed": len(plan.chosen) + sum(plan.deferred.values()),
        "placed": placed,
        "failed": failed,
        "resumed_reservations": len(leftovers),
        "recovered_reports": recovered,
        "refused_leads": plan.refused_leads,
        "refusals_by_reason": dg.MetadataValue.json(dict(plan.refusals)),
        "deferred": dg.MetadataValue.json(dict(plan.deferred)),
        "not_reserved": dg.MetadataValue.json(dict(outcomes)),
        "open_calls_before": total_open,
        "duration_s": round(time.perf_counter() - started, 3),
    }
    metadata.update({f"refused_{reason}": n for reason, n in plan.refusals.items()})
    return dg.MaterializeResult(metadata=metadata)


def _recover_lost_reports(context: dg.AssetExecutionContext, postgres: PostgresResource, vapi: VapiResource,
                          now: datetime) -> int:
    """Ask VAPI about calls whose report never came; an ended one goes to the inbox as its report."""
    with postgres.connection() as conn:
        stale = store.stale_open_calls(conn, now)
    recovered = 0
    for vapi_id in stale:
        try:
            call = vapi.get_call(vapi_id)
        except VapiError as exc:
            context.log.warning("could not look up call %s: %s", vapi_id, exc)
            continue
        if call.status == "ended" and call.raw:
            with postgres.connection() as conn:
                recovered += store.store_recovered_report(conn, call.raw)
    return recovered


def _place(context: dg.AssetExecutionContext, postgres: PostgresResource, vapi: VapiResource,
           res: store.Reservation, run_id: str, *, resume: bool = False) -> bool | None:
    """Ask VAPI for a reserved call. True placed, False refused for good, None left for the next run."""
    try:
        call = vapi.create_call(idempotency_key=res.idempotency_key, phone_number_id=res.vapi_phone_number_id,
                                customer_number=res.dial_number, customer_name=res.first_name,
                                metadata={"lead_id": res.lead_id, "call_id": res.call_id, "attempt": res.attempt},
                                variable_values=store.variable_values(res), resume=resume)
    except VapiError as exc:
        if exc.retryable:  # VAPI unreachable: the reservation stays and the next run resumes it
            context.log.warning("VAPI unavailable for call %s: %s", res.call_id, exc)
            return None
        with postgres.connection() as conn:
            store.mark_failed(conn, res, str(exc), run_id=run_id)
        return False
    with postgres.connection() as conn:
        store.mark_placed(conn, res, call.id, call.status, run_id=run_id)
    return True


class CallOutcomesConfig(dg.Config):
    """Run config of `call_outcomes`."""

    event_ids: list[int] = Field(default_factory=list,
                                 description="Inbox events to process (the sensor sets them); empty: all due.")
    max_tries: int = Field(default=DEFAULT_MAX_TRIES, ge=1, description="Tries before an event goes to the DLQ.")
    limit: int = Field(default=5000, ge=1, description="At most this many events per run when draining.")
    notify_max_tries: int = Field(default=NOTIFY_MAX_TRIES, ge=1,
                                  description="Tries of a broker notification before it is dead-lettered.")
    appointment_fee: float = Field(default=150.0, ge=0, description="billing_events amount of appointment_set.")


@dg.asset(
    deps=[voice_calls],
    group_name="voice",
    kinds={"postgres"},
    owners=OWNERS,
)
def call_outcomes(context: dg.AssetExecutionContext, config: CallOutcomesConfig,
                  postgres: PostgresResource) -> dg.MaterializeResult:
    """What became of each call, from VAPI's status updates and end-of-call reports in the webhook
    inbox: booked (lead converted, number locked, ``appointment_set`` billing event, broker
    notified by signed webhook), callback (follow-up time), not interested or an opt-out said on
    the call (do not contact; an opt-out also revokes consent and suppresses the number), no
    answer / busy / voicemail (retry later; the fifth failure is do-not-contact). Idempotent on the
    call: a second report changes nothing; a report for a call we never placed is dead-lettered.
    Then delivers due broker notifications (retried with backoff, dead-lettered after N tries).
    """
    started = time.perf_counter()
    run_id = context.run.run_id
    settings = OutcomeSettings(appointment_fee=Decimal(str(config.appointment_fee)))
    with postgres.connection() as conn:
        ignored = ignore_unhandled(conn)
        ids = list(config.event_ids) or due_event_ids(conn, PROVIDER, config.limit)

    def warn(event_id: int, tries: int, exc: BaseException) -> None:
        context.log.warning("vapi event %s failed (try %d): %s", event_id, tries, type(exc).__name__)

    drained = drain(postgres.connection, ids,
                    lambda conn, event_id: process_event(conn, event_id, settings=settings, run_id=run_id),
                    provider=PROVIDER, stage=STAGE, max_tries=config.max_tries, run_id=run_id, on_failure=warn)
    outcomes = drained.outcomes
    notified = deliver_due(postgres.connection, now=datetime.now(timezone.utc), max_tries=config.notify_max_tries,
                           run_id=run_id)
    context.log.info("call outcomes: %s; notifications %s", dict(outcomes), dict(notified))
    return dg.MaterializeResult(metadata={
        "events": len(ids),
        "ignored_events": ignored,
        "failed_tries": drained.failures,
        "outcomes": dg.MetadataValue.json(dict(outcomes)),
        "booked": outcomes.get("booked", 0),
        "notifications": dg.MetadataValue.json(dict(notified)),
        "duration_s": round(time.perf_counter() - started, 3),
    })
