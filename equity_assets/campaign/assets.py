"""Campaign assets: the contactable set (05:30 PT), the day's batch and its push (06:00 PT Mon–Fri).

A campaign day is one unit: `daily_campaign_batch` (who is sent, recorded in the database) and
`instantly_campaign_leads` (the same sends delivered to Instantly) come out of one step that
cannot be split, so any run, re-run or backfill of a date range selects *and* pushes. Between
the two, the blocking checks run inside the step: when one fails nothing is pushed. A check that
ran after the push could only report a send, not stop it.
"""

# No `from __future__ import annotations` here: Dagster reads the config and context
# annotations at definition time.
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta

import dagster as dg
from pydantic import Field

from ..db.resources import PostgresResource
from ..observe.events import Event, Stage, record_event
from ..security.consent import ConsentConfigError, consent_secret
from ..vendors.instantly import InstantlyResource
from .assignment import assign_leads
from .checks import BATCH_GATES, BATCH_SCHEMA_CHECK, Violations, batch_schema_result
from .contactable import refresh_contactable
from .feeder import select_day_in_groups
from .partitions import CAMPAIGN_TIMEZONE, campaign_days
from .push import DayPush, push_day, withdraw_uncontactable
from .scoring import ScoreWeights, score_verified_leads

#: Where consent links point when neither run config nor EQUITY_CONSENT_BASE_URL says (the gateway).
DEFAULT_CONSENT_BASE_URL = "http://127.0.0.1:8080"
CONSENT_BASE_URL_ENV = "EQUITY_CONSENT_BASE_URL"

OWNERS = ["team:data-platform"]

# Outreach-facing: the weekday batch must land between its 06:00 tick and 07:00 PT.
BATCH_FRESHNESS = dg.FreshnessPolicy.cron(
    deadline_cron="0 7 * * 1-5", lower_bound_delta=timedelta(hours=1), timezone=CAMPAIGN_TIMEZONE
)


class ScoreConfig(dg.Config):
    """Run config of `scored_leads`."""

    weights: ScoreWeights = Field(default_factory=ScoreWeights, description="Lead score weights.")


class ContactableConfig(dg.Config):
    """Run config of `contactable_leads`."""

    full_rebuild: bool = Field(
        default=False, description="Re-evaluate every lead (after editing verification_code_map, or to reconcile)."
    )
    lookback_minutes: int = Field(
        default=60, ge=0, description="Overlap with the previous refresh: covers transactions that commit late."
    )


class CampaignPushConfig(dg.Config):
    """Run config of the campaign day (`daily_campaign_batch` and `instantly_campaign_leads`)."""

    selection_groups: int = Field(
        default=2, ge=1, le=16,
        description="Broker groups selected at once, each in its own transaction (about the database's cores).",
    )

    consent_base_url: str = Field(
        default="", description=f"Consent link root; empty: ${CONSENT_BASE_URL_ENV}, else {DEFAULT_CONSENT_BASE_URL}."
    )
    min_token_validity_hours: int = Field(
        default=24, ge=0, description="Re-mint a pending send's consent token when it expires sooner than this."
    )

    def resolved_consent_base_url(self) -> str:
        return self.consent_base_url or os.environ.get(CONSENT_BASE_URL_ENV) or DEFAULT_CONSENT_BASE_URL


def batch_dates(context: dg.AssetExecutionContext) -> list[date]:
    """The run's partitions as dates, oldest first (a range backfill fills days in order)."""
    return sorted(date.fromisoformat(key) for key in context.partition_keys)


@dg.asset(
    deps=[dg.AssetKey("verified_leads")],
    group_name="campaign",
    kinds={"postgres"},
    owners=OWNERS,
    # the 05:30 contactable set reads the day's assignments
    freshness_policy=dg.FreshnessPolicy.cron(
        deadline_cron="30 5 * * *", lower_bound_delta=timedelta(hours=24), timezone=CAMPAIGN_TIMEZONE
    ),
)
def scored_leads(
    context: dg.AssetExecutionContext, config: ScoreConfig, postgres: PostgresResource
) -> dg.MaterializeResult:
    """Lead score of every verified lead, then broker assignment: each waiting contactable lead goes
    to the least-loaded active broker covering its state and is queued.

    Reads only `leads` and `brokers`, never a vendor: re-run it on its own after editing the
    weights (run config) or broker territories. Idempotent: unchanged scores are not rewritten and
    a lead is assigned once.
    """
    started = time.perf_counter()
    with postgres.connection() as conn:
        verified, rescored = score_verified_leads(conn, config.weights)
        assignment = assign_leads(conn)
        record_event(
            conn, Event.LEAD_QUEUED, stage=Stage.SCORED_LEADS, count=assignment.queued, run_id=context.run.run_id,
            payload=assignment.as_metadata(),
            idempotency_key=f"{Stage.SCORED_LEADS}:{context.run.run_id}:{context.retry_number}:lead_queued",
        )
    metadata = {"verified_leads": verified, "rescored": rescored, **assignment.as_metadata(),
                "duration_s": round(time.perf_counter() - started, 3)}
    context.log.info("scored_leads: %s", metadata)
    return dg.MaterializeResult(metadata=metadata)


@dg.asset(
    deps=[scored_leads],
    group_name="campaign",
    kinds={"postgres"},
    owners=OWNERS,
    freshness_policy=dg.FreshnessPolicy.cron(
        deadline_cron="0 6 * * *", lower_bound_delta=timedelta(hours=1), timezone=CAMPAIGN_TIMEZONE
    ),
)
def contactable_leads(
    context: dg.AssetExecutionContext, config: ContactableConfig, postgres: PostgresResource
) -> dg.MaterializeResult:
    """Leads that may be emailed today (a maintained table in place of a `mv_contactable_leads`
    view): usable verified email, not on the suppression list, not `do_not_contact`, broker
    assigned, status new/queued/active.

    Kept as a table and updated incrementally from the leads changed since the last refresh (a
    full rebuild the first time, or with `full_rebuild`). Pipeline-only: broker roles have no
    grant on it and RLS is forced with no policy.
    """
    with postgres.connection() as conn:
        counts = refresh_contactable(
            conn, full=config.full_rebuild, lookback=timedelta(minutes=config.lookback_minutes)
        )
        record_event(conn, Event.CONTACTABLE_REFRESHED, stage=Stage.CONTACTABLE_LEADS, count=counts.size,
                     duration_ms=int(counts.seconds * 1000), run_id=context.run.run_id, payload=counts.as_metadata())
    context.log.info("contactable set: %s", counts.as_metadata())
    return dg.MaterializeResult(
        metadata={
            "size": counts.size,
            "added": counts.added,
            "removed": counts.removed,
            "updated": counts.updated,
            "scanned": counts.scanned,
            "mode": counts.mode,
            "duration_s": round(counts.seconds, 3),
        }
    )


BATCH_KEY = dg.AssetKey("daily_campaign_batch")
PUSH_KEY = dg.AssetKey("instantly_campaign_leads")

daily_campaign_batch = dg.AssetSpec(
    BATCH_KEY,
    deps=[contactable_leads],
    description=(
        "The day's email batch: per active broker, up to `daily_cap` (default 250) queued contactable "
        "leads by `lead_score` DESC, each with a consent token and a `campaign_sends` row, committed "
        "before anything is pushed. Re-running a date only tops it up to the caps; a lead is never in "
        "two batches."
    ),
    group_name="campaign",
    kinds={"postgres"},
    owners=OWNERS,
    freshness_policy=BATCH_FRESHNESS,
)

instantly_campaign_leads = dg.AssetSpec(
    PUSH_KEY,
    deps=[BATCH_KEY],
    description=(
        "The day's batch as delivered to Instantly: every `campaign_sends` row still `queued` goes to "
        "its broker's campaign (≤ 1,000 leads per call, `skip_if_in_campaign`) with the consent link in "
        "`custom_variables.consent_url`. Only leads Instantly accepted turn `pushed` (and the lead "
        "`active`); a rejected address "
        "is dead-lettered and suppressed. Re-running a date pushes only what has not reached Instantly."
    ),
    group_name="campaign",
    kinds={"postgres", "instantly"},
    owners=OWNERS,
    freshness_policy=BATCH_FRESHNESS,
)


def select_batches(context: dg.AssetExecutionContext, dates: list[date], config: CampaignPushConfig,
                   postgres: PostgresResource, instantly: InstantlyResource) -> dict[str, object]:
    """Fill each date's batch (oldest first; per date, one transaction per broker group); the
    batch's metadata."""
    started = time.perf_counter()
    now = datetime.now(UTC)
    per_day: dict[str, dict[str, int | float]] = {}
    for batch_date in dates:
        day = select_day_in_groups(postgres.connection, batch_date, default_campaign=instantly.campaign_id, now=now,
                                   run_id=context.run.run_id, groups=config.selection_groups)
        # After the selection, right before the gates: a lead that opted out since it was picked
        # (this run or a crashed one) is withdrawn here instead of failing `no_suppressed_or_dnc_lead`.
        with postgres.connection() as conn:
            withdrawn = withdraw_uncontactable(conn, batch_date)
        per_day[batch_date.isoformat()] = {
            "selected": day.selected,
            "already_in_batch": day.already_in_batch,
            "brokers_served": day.brokers_served,
            "withdrawn": withdrawn,
            "seconds": round(day.seconds, 3),
            **day.phases,
        }
        if day.brokers_without_campaign:
            context.log.warning("%s: %d active broker(s) have no Instantly campaign and no default is set",
                                batch_date, day.brokers_without_campaign)
    context.log.info("campaign batch: %s", per_day)
    return {
        "dates": len(per_day),
        "selected": sum(int(d["selected"]) for d in per_day.values()),
        "batch_size": sum(int(d["selected"] + d["already_in_batch"]) for d in per_day.values()),
        "withdrawn": sum(int(d["withdrawn"]) for d in per_day.values()),
        "brokers_served": max((int(d["brokers_served"]) for d in per_day.values()), default=0),
        "per_date": dg.MetadataValue.json(per_day),
        "duration_s": round(time.perf_counter() - started, 3),
    }


def run_gates(postgres: PostgresResource, dates: list[date]) -> dict[str, Violations]:
    """The blocking checks over the dates' batch, each on its own connection, all at once (each
    reads every send of the day: side by side they take as long as the slowest, not the sum)."""

    def verdict(gate: Callable[..., Violations]) -> Violations:
        with postgres.connection() as conn:
            return gate(conn, dates)

    with ThreadPoolExecutor(max_workers=len(BATCH_GATES), thread_name_prefix="gate") as pool:
        return dict(zip(BATCH_GATES, pool.map(verdict, BATCH_GATES.values()), strict=True))


def _push_metadata(days: list[DayPush], seconds: float) -> dict[str, object]:
    return {
        "dates": len(days),
        "pending": sum(d.pending for d in days),
        "pushed": sum(d.pushed for d in days),
        "rejected": sum(d.rejected for d in days),
        "unpushed": sum(d.unpushed for d in days),
        "withdrawn": sum(d.withdrawn for d in days),
        "tokens_reminted": sum(d.tokens_reminted for d in days),
        "chunks": sum(d.chunks for d in days),
        "leads_uploaded": sum(d.leads_uploaded for d in days),
        "already_in_campaign": sum(d.already_in_campaign for d in days),
        "invalid_emails": sum(d.invalid_emails for d in days),
        "retries": sum(d.retries for d in days),
        "duration_s": round(seconds, 3),
        "per_date": dg.MetadataValue.json({d.batch_date.isoformat(): d.phases for d in days}),
    }


def push_batches(context: dg.AssetExecutionContext, dates: list[date], config: CampaignPushConfig,
                 postgres: PostgresResource, instantly: InstantlyResource) -> dict[str, object]:
    """Push each date's queued sends; raises `Failure` (with the metadata) when some did not land."""
    started = time.perf_counter()
    base_url = config.resolved_consent_base_url()
    validity = timedelta(hours=config.min_token_validity_hours)
    days: list[DayPush] = []
    for batch_date in dates:
        day = push_day(postgres.connection, instantly, batch_date, consent_base_url=base_url,
                       now=datetime.now(UTC), run_id=context.run.run_id, min_validity=validity)
        days.append(day)
        context.log.info("%s: pushed %d of %d (rejected %d, withdrawn %d, re-minted %d tokens)",
                         batch_date, day.pushed, day.pending, day.rejected, day.withdrawn, day.tokens_reminted)
        if day.stop:
            break
    metadata = _push_metadata(days, time.perf_counter() - started)
    errors = [f"{d.batch_date}: {e}" for d in days for e in d.errors]
    if errors:
        raise dg.Failure(
            description=f"{metadata['unpushed']} send(s) did not reach Instantly; re-run the partition(s) "
                        f"to push only those. " + "; ".join(errors[:5]),
            metadata=metadata,
            allow_retries=not any(d.rejected_credentials for d in days),
        )
    return metadata


@dg.multi_asset(
    name="campaign_day",
    specs=[daily_campaign_batch, instantly_campaign_leads],
    check_specs=[dg.AssetCheckSpec(name, asset=BATCH_KEY, blocking=True, description=gate.__doc__)
                 for name, gate in BATCH_GATES.items()]
    + [dg.AssetCheckSpec(BATCH_SCHEMA_CHECK, asset=BATCH_KEY, blocking=True, description=batch_schema_result.__doc__)],
    partitions_def=campaign_days,
    can_subset=False,
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool=InstantlyResource.pool,
)
def campaign_day(
    context: dg.AssetExecutionContext,
    config: CampaignPushConfig,
    postgres: PostgresResource,
    instantly: InstantlyResource,
):
    """One weekday of the email campaign (or a range of them, oldest first): select the batch,
    run the blocking checks on it, then push it to Instantly.

    The two assets cannot be materialized apart, so a backfill of `daily_campaign_batch` always
    sends what it selects. A missing secret is a configuration error: it fails at once and is not
    retried.
    """
    try:
        consent_secret()  # fail before selecting anything when the token secret is missing
    except ConsentConfigError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from exc
    dates = batch_dates(context)
    yield dg.MaterializeResult(asset_key=BATCH_KEY, metadata=select_batches(context, dates, config, postgres, instantly))
    verdicts = run_gates(postgres, dates)
    with postgres.connection() as conn:
        schema = batch_schema_result(conn, dates)
    for name, violations in verdicts.items():
        yield violations.as_result(name, asset_key=BATCH_KEY)
    yield schema
    failed = sorted([name for name, violations in verdicts.items() if violations.count]
                    + ([] if schema.passed else [BATCH_SCHEMA_CHECK]))
    if failed:
        raise dg.Failure(description=f"blocking check(s) failed, nothing was pushed: {', '.join(failed)}",
                         allow_retries=False)
    yield dg.MaterializeResult(asset_key=PUSH_KEY, metadata=push_batches(context, dates, config, postgres, instantly))
