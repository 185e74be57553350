"""Engage assets: `email_replies`, the classified replies and their effects on leads."""

# No `from __future__ import annotations`: Dagster reads the config and context annotations.
import time

import dagster as dg
from pydantic import Field

from ..db.resources import PostgresResource
from ..observe.inbox import DEFAULT_MAX_TRIES, drain, due_event_ids
from .inbox import PROVIDER, STAGE, ignore_uninteresting, process_event

OWNERS = ["team:data-platform"]


class EmailRepliesConfig(dg.Config):
    """Run config of `email_replies`."""

    event_ids: list[int] = Field(
        default_factory=list,
        description="Inbox events to process (the webhook sensor sets one); empty: every pending event that is due.",
    )
    max_tries: int = Field(default=DEFAULT_MAX_TRIES, ge=1, description="Tries before an event goes to the DLQ.")
    limit: int = Field(default=5000, ge=1, description="At most this many events per run when draining.")


@dg.asset(
    deps=[dg.AssetKey("instantly_campaign_leads")],
    group_name="engage",
    kinds={"postgres"},
    owners=OWNERS,
)
def email_replies(
    context: dg.AssetExecutionContext, config: EmailRepliesConfig, postgres: PostgresResource
) -> dg.MaterializeResult:
    """Instantly replies and lead events from the webhook inbox, classified (interested, question,
    not_interested, unsubscribe, out_of_office, wrong_person, bounce, hostile) with the rule-based
    classifier, each with its effects on the lead applied in the transaction that marks the event
    processed: replied status, voice eligibility, do-not-contact and suppression on a revocation,
    e-mail suppression on a bounce. A failing event is retried by the sensor and parked in the DLQ
    after `max_tries`; the others go on.
    """
    started = time.perf_counter()
    run_id = context.run.run_id
    with postgres.connection() as conn:
        ignored = ignore_uninteresting(conn)
        ids = list(config.event_ids) or due_event_ids(conn, PROVIDER, config.limit)

    def warn(event_id: int, tries: int, exc: BaseException) -> None:
        context.log.warning("webhook event %s failed (try %d): %s", event_id, tries, type(exc).__name__)

    drained = drain(postgres.connection, ids, lambda conn, event_id: process_event(conn, event_id, run_id=run_id),
                    provider=PROVIDER, stage=STAGE, max_tries=config.max_tries, run_id=run_id, on_failure=warn)
    outcomes = drained.outcomes
    revocations = sum(result.revocation for result in drained.results)
    context.log.info("email replies: %s (ignored %d)", dict(outcomes), ignored)
    return dg.MaterializeResult(
        metadata={
            "events": len(ids),
            "ignored_events": ignored,
            "revocations": revocations,
            "failed_tries": drained.failures,
            "outcomes": dg.MetadataValue.json(dict(outcomes)),
            "duration_s": round(time.perf_counter() - started, 3),
        }
    )
