"""Checks of the campaign: the blocking gates between selecting a day and pushing it, the watch for
sends that never left, and the checks on `scored_leads` and `contactable_leads` (only assigned,
contactable leads are queued; the rows match their Pandera models).

The gates (`BATCH_GATES`) run inside the `campaign_day` step on the dates it selected, before
the push. `no_stale_queued_sends` runs after each campaign day and with the 05:30 refresh. Each
reports the number of violations plus a few example ids (lead and broker ids, never emails).
"""

# No `from __future__ import annotations` here: Dagster reads the config and context
# annotations at definition time.
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import dagster as dg
import psycopg

from ..db.resources import PostgresResource
from ..observe.validation import check_table_sample
from .partitions import CAMPAIGN_TIMEZONE
from .schemas import CampaignBatchTable, ContactableLeadsTable, ScoredLeadsTable

# Provider-supplied addresses with blanks are marked usable today; Instantly refuses them and the
# push dead-letters them, so these checks warn instead of blocking (docs/runbook.md).
EMAIL_SHAPE_CHECKS = frozenset({"looks_like_an_address", "usable_email_is_an_address"})

SAMPLE = 5
#: A send still `queued` this long after its day's 06:00 PT tick was lost on the way to Instantly.
QUEUED_GRACE_HOURS = 3

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

    def as_result(self, check_name: str, *, asset_key: dg.AssetKey | None = None) -> dg.AssetCheckResult:
        return dg.AssetCheckResult(
            asset_key=asset_key,
            check_name=check_name,
            passed=self.count == 0,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={"violations": self.count, "sample": dg.MetadataValue.json(self.sample)},
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


# The gates between selection and push, by check name (run by `campaign_day`).
BATCH_GATES = {
    "no_lead_in_two_batches": leads_in_two_batches,
    "broker_daily_cap_held": brokers_over_cap,
    "no_suppressed_or_dnc_lead": suppressed_or_dnc_sends,
}

# Each date's send is due at 06:00 PT that day; hours later it must have left (or been withdrawn).
_STALE_QUEUED = """
SELECT s.batch_date::text || ' ' || s.lead_id::text
FROM campaign_sends s
WHERE s.status = 'queued'
  AND ((s.batch_date + time '06:00') AT TIME ZONE %(tz)s) + make_interval(hours => %(grace)s) < now()
"""


def stale_queued_sends(conn: psycopg.Connection, grace_hours: int = QUEUED_GRACE_HOURS) -> Violations:
    """Sends still `queued` more than `grace_hours` after their day's 06:00 PT tick."""
    rows = [r[0] for r in conn.execute(_STALE_QUEUED, {"tz": CAMPAIGN_TIMEZONE, "grace": grace_hours})]
    return Violations(len(rows), sorted(rows)[:SAMPLE])


@dg.asset_check(asset=dg.AssetKey("instantly_campaign_leads"))
def no_stale_queued_sends(postgres: PostgresResource) -> dg.AssetCheckResult:
    """No send of any date is still `queued` hours after its day began: a day that was selected
    but never pushed (a failed push, a half-finished backfill) shows up here. Fix: re-run that
    date of `daily_campaign_batch`; the run pushes only what did not reach Instantly."""
    with postgres.connection() as conn:
        return stale_queued_sends(conn).as_result("no_stale_queued_sends")


_QUEUED_PROBLEMS = """
SELECT count(*) FILTER (WHERE assigned_broker_id IS NULL),
       count(*) FILTER (WHERE NOT (email_verified OR phone_verified)),
       count(*) FILTER (WHERE litigator OR deceased)
FROM leads WHERE campaign_status = 'queued'
"""


@dg.asset_check(
    asset=dg.AssetKey("scored_leads"),
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
    asset=dg.AssetKey("scored_leads"),
    blocking=True,
    description="Recently updated verified leads match ScoredLeadsTable (score 0-100, queued means assigned).",
)
def scored_leads_match_schema(postgres: PostgresResource) -> dg.AssetCheckResult:
    """Every verified lead has a score after a run; outreach statuses need a broker and no safety flag."""
    with postgres.connection() as conn:
        return check_table_sample(conn, ScoredLeadsTable, _SCORED_SAMPLE, key="id")


@dg.asset_check(asset=dg.AssetKey("contactable_leads"), blocking=True,
                description="The newest rows of the contactable set match ContactableLeadsTable.")
def contactable_leads_match_schema(postgres: PostgresResource) -> dg.AssetCheckResult:
    """One row per lead with a broker and a lower-case address: what the feeder relies on."""
    with postgres.connection() as conn:
        return check_table_sample(conn, ContactableLeadsTable, _CONTACTABLE_SAMPLE, key="lead_id",
                                  warn_only=EMAIL_SHAPE_CHECKS)


BATCH_SCHEMA_CHECK = "campaign_batch_matches_schema"


def batch_schema_result(conn: psycopg.Connection, dates: Sequence[date]) -> dg.AssetCheckResult:
    """The dates' batch rows match CampaignBatchTable (a campaign and a consent token each): a send
    without them cannot be pushed correctly, so this gates the push like `BATCH_GATES`."""
    result = check_table_sample(conn, CampaignBatchTable, _BATCH_SAMPLE, {"dates": list(dates)}, key="lead_id")
    return dg.AssetCheckResult(asset_key=dg.AssetKey("daily_campaign_batch"), check_name=BATCH_SCHEMA_CHECK,
                               passed=result.passed, severity=result.severity, metadata=result.metadata,
                               description=result.description)
