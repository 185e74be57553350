"""Blocking checks on `daily_campaign_batch` (they gate `instantly_campaign_leads`, the push) and on
`scored_leads` (only assigned, contactable leads are queued).

Each one looks at the batch dates the run materialized (all dates when run on its own) and
reports the number of violations plus a few example ids (lead and broker ids, never emails).
"""

# No `from __future__ import annotations` here: Dagster reads the config and context
# annotations at definition time.
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

import dagster as dg
import psycopg

from ..db.resources import PostgresResource
from ..observe.validation import check_table_sample
from .assets import contactable_leads, daily_campaign_batch, scored_leads
from .partitions import campaign_days
from .schemas import CampaignBatchTable, ContactableLeadsTable, ScoredLeadsTable

# Provider-supplied addresses with blanks are marked usable today; Instantly refuses them and the
# push dead-letters them, so these checks warn instead of blocking (docs/runbook.md).
EMAIL_SHAPE_CHECKS = frozenset({"looks_like_an_address", "usable_email_is_an_address"})

SAMPLE = 5
PARTITION_TAG = "dagster/partition"
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"

# Belt and braces for UNIQUE (lead_id): a dropped constraint or a hand-made row must not slip by.
_LEADS_IN_TWO_BATCHES = """
SELECT a.lead_id::text
FROM campaign_sends a
WHERE (%(dates)s::date[] IS NULL OR a.batch_date = ANY(%(dates)s::date[]))
  AND EXISTS (SELECT 1 FROM campaign_sends b WHERE b.lead_id = a.lead_id AND b.batch_date <> a.batch_date)
"""

# Withdrawn and failed rows count too: they used the day's room.
_OVER_CAP = """
SELECT s.batch_date::text || ' ' || s.broker_id::text
FROM campaign_sends s JOIN brokers b ON b.id = s.broker_id
WHERE (%(dates)s::date[] IS NULL OR s.batch_date = ANY(%(dates)s::date[]))
GROUP BY s.batch_date, s.broker_id, b.daily_cap
HAVING count(*) > b.daily_cap
"""

# A send still waiting for the push must be contactable now; one already pushed must not have
# been suppressed when it was batched (a lead who opts out after the email left is fine).
# Withdrawn rows (`failed`) are the feeder doing its job, not a violation.
_SUPPRESSED_OR_DNC = """
SELECT s.lead_id::text
FROM campaign_sends s JOIN leads l ON l.id = s.lead_id
WHERE (%(dates)s::date[] IS NULL OR s.batch_date = ANY(%(dates)s::date[]))
  AND ((s.status = 'queued'
        AND (l.campaign_status = 'do_not_contact'
             OR EXISTS (SELECT 1 FROM suppression_list x
                        WHERE x.channel = 'email' AND x.value = l.email
                          AND (x.expires_at IS NULL OR x.expires_at > now()))))
    OR (s.status = 'pushed'
        AND EXISTS (SELECT 1 FROM suppression_list x
                    WHERE x.channel = 'email' AND x.value = l.email AND x.created_at <= s.created_at
                      AND (x.expires_at IS NULL OR x.expires_at > s.created_at))))
"""


@dataclass(frozen=True)
class Violations:
    """Offending ids (up to a sample) and how many there are."""

    count: int
    sample: list[str]

    def as_result(self, what: str) -> dg.AssetCheckResult:
        return dg.AssetCheckResult(
            passed=self.count == 0,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={"violations": self.count, f"sample_{what}": dg.MetadataValue.json(self.sample)},
        )


def _violations(conn: psycopg.Connection, query: str, dates: Sequence[date] | None) -> Violations:
    rows = [r[0] for r in conn.execute(query, {"dates": list(dates) if dates is not None else None})]
    return Violations(len(rows), sorted(rows)[:SAMPLE])


def leads_in_two_batches(conn: psycopg.Connection, dates: Sequence[date] | None = None) -> Violations:
    """Leads of these dates that also appear in another batch row."""
    return _violations(conn, _LEADS_IN_TWO_BATCHES, dates)


def brokers_over_cap(conn: psycopg.Connection, dates: Sequence[date] | None = None) -> Violations:
    """(date, broker) pairs of these dates holding more sends than the broker's daily cap."""
    return _violations(conn, _OVER_CAP, dates)


def suppressed_or_dnc_sends(conn: psycopg.Connection, dates: Sequence[date] | None = None) -> Violations:
    """Sends of these dates that are, or were when batched, suppressed or do_not_contact."""
    return _violations(conn, _SUPPRESSED_OR_DNC, dates)


def checked_dates(tags: Mapping[str, str]) -> list[date] | None:
    """The batch dates a run materialized, from its tags; None (every date) for a check-only run.

    The checks are not partitioned themselves (partitioned checks are a Dagster preview), so they
    read the run's partition or partition range the way Dagster records it.
    """
    if PARTITION_TAG in tags:
        return [date.fromisoformat(tags[PARTITION_TAG])]
    if RANGE_START_TAG in tags and RANGE_END_TAG in tags:
        keys = campaign_days.get_partition_keys_in_range(
            dg.PartitionKeyRange(tags[RANGE_START_TAG], tags[RANGE_END_TAG])
        )
        return [date.fromisoformat(key) for key in keys]
    return None


@dg.asset_check(asset=daily_campaign_batch, blocking=True)
def no_lead_in_two_batches(context: dg.AssetCheckExecutionContext, postgres: PostgresResource) -> dg.AssetCheckResult:
    """No lead of these batches appears in any other batch: each lead is emailed at most once."""
    with postgres.connection() as conn:
        return leads_in_two_batches(conn, checked_dates(context.run.tags)).as_result("lead_ids")


@dg.asset_check(asset=daily_campaign_batch, blocking=True)
def broker_daily_cap_held(context: dg.AssetCheckExecutionContext, postgres: PostgresResource) -> dg.AssetCheckResult:
    """No broker holds more sends on one date than its `daily_cap`."""
    with postgres.connection() as conn:
        return brokers_over_cap(conn, checked_dates(context.run.tags)).as_result("date_brokers")


@dg.asset_check(asset=daily_campaign_batch, blocking=True)
def no_suppressed_or_dnc_lead(context: dg.AssetCheckExecutionContext, postgres: PostgresResource) -> dg.AssetCheckResult:
    """No send waiting for the push is suppressed or `do_not_contact`, and none was when batched."""
    with postgres.connection() as conn:
        return suppressed_or_dnc_sends(conn, checked_dates(context.run.tags)).as_result("lead_ids")


campaign_batch_checks = [no_lead_in_two_batches, broker_daily_cap_held, no_suppressed_or_dnc_lead]


_QUEUED_PROBLEMS = """
SELECT count(*) FILTER (WHERE assigned_broker_id IS NULL),
       count(*) FILTER (WHERE NOT (email_verified OR phone_verified)),
       count(*) FILTER (WHERE litigator OR deceased)
FROM leads WHERE campaign_status = 'queued'
"""


@dg.asset_check(
    asset=scored_leads,
    blocking=True,
    description="Every queued lead has a broker and a usable channel, and is neither a litigator nor deceased.",
)
def queued_leads_are_assigned_and_contactable(postgres: PostgresResource) -> dg.AssetCheckResult:
    """The campaign feeder takes queued leads as they are: an orphan or uncontactable one must not be queued."""
    with postgres.connection() as conn:
        no_broker, no_channel, flagged = conn.execute(_QUEUED_PROBLEMS).fetchone()
    return dg.AssetCheckResult(
        passed=no_broker == 0 and no_channel == 0 and flagged == 0,
        metadata={"queued_without_broker": no_broker, "queued_without_usable_channel": no_channel,
                  "queued_litigator_or_deceased": flagged},
    )


_SCORED_SAMPLE = """
SELECT id::text AS id, lead_score, campaign_status::text AS campaign_status,
       assigned_broker_id IS NOT NULL AS assigned, litigator OR deceased AS flagged
FROM leads WHERE verified_at IS NOT NULL
ORDER BY updated_at DESC LIMIT %(limit)s
"""

_CONTACTABLE_SAMPLE = """
SELECT lead_id::text AS lead_id, broker_id::text AS broker_id, email
FROM contactable_leads ORDER BY refreshed_at DESC LIMIT %(limit)s
"""

_BATCH_SAMPLE = """
SELECT lead_id::text AS lead_id, broker_id::text AS broker_id, campaign_id,
       consent_token_id::text AS consent_token_id, status
FROM campaign_sends
WHERE %(dates)s::date[] IS NULL OR batch_date = ANY(%(dates)s::date[])
ORDER BY batch_date DESC, lead_id LIMIT %(limit)s
"""


@dg.asset_check(
    asset=scored_leads,
    blocking=True,
    description="Recently updated verified leads match ScoredLeadsTable (score 0-100, queued means assigned).",
)
def scored_leads_match_schema(postgres: PostgresResource) -> dg.AssetCheckResult:
    """Every verified lead has a score after a run; outreach statuses need a broker and no safety flag."""
    with postgres.connection() as conn:
        return check_table_sample(conn, ScoredLeadsTable, _SCORED_SAMPLE, key="id")


@dg.asset_check(asset=contactable_leads, blocking=True,
                description="The newest rows of the contactable set match ContactableLeadsTable.")
def contactable_leads_match_schema(postgres: PostgresResource) -> dg.AssetCheckResult:
    """One row per lead with a broker and a lower-case address: what the feeder relies on."""
    with postgres.connection() as conn:
        return check_table_sample(conn, ContactableLeadsTable, _CONTACTABLE_SAMPLE, key="lead_id",
                                  warn_only=EMAIL_SHAPE_CHECKS)


@dg.asset_check(asset=daily_campaign_batch, blocking=True,
                description="The run's batch rows match CampaignBatchTable (a campaign and a consent token each).")
def campaign_batch_matches_schema(
    context: dg.AssetCheckExecutionContext, postgres: PostgresResource
) -> dg.AssetCheckResult:
    """A send without a campaign or a consent token cannot be pushed correctly: stop before the push."""
    with postgres.connection() as conn:
        return check_table_sample(conn, CampaignBatchTable, _BATCH_SAMPLE,
                                  {"dates": checked_dates(context.run.tags)}, key="lead_id")
