"""Engage assets: `email_replies`, the classified replies and their effects on leads."""

# No `from __future__ import annotations`: Dagster reads the config and context annotations.
import time
from collections import Counter

import dagster as dg
from pydantic import Field

from ..db.resources import PostgresResource
from .inbox import DEFAULT_MAX_TRIES, PROVIDER, claim, ignore_uninteresting, park_in_dlq, process_event, record_failure

OWNERS = ["team:data-platform"]

_DUE_SQL = """
SELECT id FROM webhook_events
WHERE provider = %s AND status = 'pending' AND (next_attempt_at IS NULL OR next_attempt_at <= now())
ORDER BY id LIMIT %s
"""


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
        ids = list(config.event_ids) or [r[0] for r in conn.execute(_DUE_SQL, (PROVIDER, config.limit))]
    outcomes: Counter[str] = Counter()
    revocations = failures = 0
    for event_id in ids:
        with postgres.connection() as conn:
            tries = claim(conn, event_id)
        if tries is None:
            outcomes["skipped"] += 1
            continue
        if tries > config.max_tries:  # earlier tries died with their process: never got to record_failure
            with postgres.connection() as conn:
                park_in_dlq(conn, event_id, f"poison event: {tries - 1} tries did not finish", run_id=run_id)
            outcomes["dlq"] += 1
            continue
        try:
            with postgres.connection() as conn:
                outcome = process_event(conn, event_id, run_id=run_id)
        except Exception as exc:  # one bad event must not stop the others
            failures += 1
            with postgres.connection() as conn:
                parked = record_failure(conn, event_id, tries, exc, max_tries=config.max_tries, run_id=run_id)
            outcomes["dlq" if parked else "retry"] += 1
            context.log.warning("webhook event %s failed (try %d): %s", event_id, tries, type(exc).__name__)
            continue
        outcomes[outcome.outcome] += 1
        revocations += outcome.revocation
    context.log.info("email replies: %s (ignored %d)", dict(outcomes), ignored)
    return dg.MaterializeResult(
        metadata={
            "events": len(ids),
            "ignored_events": ignored,
            "revocations": revocations,
            "failed_tries": failures,
            "outcomes": dg.MetadataValue.json(dict(outcomes)),
            "duration_s": round(time.perf_counter() - started, 3),
        }
    )
