"""Checks of the campaign: the blocking gates between selecting a day and pushing it, and the
watch for sends that never left.

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
from .partitions import CAMPAIGN_TIMEZONE

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
