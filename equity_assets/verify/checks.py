"""Invariants of `verified_leads` that outreach depends on (blocking) or that need a human (warn)."""

import dagster as dg

from equity_assets.db.resources import PostgresResource
from equity_assets.observe.validation import check_table_sample
from equity_assets.verify.assets import verified_leads
from equity_assets.verify.schemas import VerifiedLeadsTable
from equity_assets.verify.store import RECENT_HOURS, STAGE

_SUPPRESSED_BUT_USABLE = """
SELECT count(*) FILTER (WHERE l.email_verified AND EXISTS (
           SELECT 1 FROM suppression_list s WHERE s.channel = 'email' AND s.value = l.email
             AND (s.expires_at IS NULL OR s.expires_at > now()))),
       count(*) FILTER (WHERE l.phone_verified AND (l.phone = ANY (l.dnc_phones) OR EXISTS (
           SELECT 1 FROM suppression_list s WHERE s.channel = 'phone' AND s.value = l.phone
             AND (s.expires_at IS NULL OR s.expires_at > now()))))
FROM leads l
WHERE (l.email_verified OR l.phone_verified)
  -- what this stage decided lately (an index range); suppressions added later by other stages
  -- (unsubscribes, revocations) are the campaign and voice gates' to honour
  AND l.verified_at > now() - make_interval(hours => %(hours)s)
  AND l.campaign_status IN ('new', 'queued', 'active', 'replied')
"""

_PENDING_DEAD_LETTERS = "SELECT count(*), min(created_at) FROM pipeline_dlq WHERE stage = %(stage)s AND status = 'pending'"


@dg.asset_check(
    asset=verified_leads,
    blocking=True,
    description="No email or phone on the suppression list (or the lead's DNC phones) is marked usable "
    "on a lead verified in the last 24 hours.",
)
def suppressed_channels_are_not_usable(postgres: PostgresResource) -> dg.AssetCheckResult:
    """A suppressed channel marked usable would be emailed or called: the worst failure this stage has."""
    with postgres.connection() as conn:
        emails, phones = conn.execute(_SUPPRESSED_BUT_USABLE, {"hours": RECENT_HOURS}).fetchone()
    return dg.AssetCheckResult(
        passed=emails == 0 and phones == 0,
        metadata={"suppressed_emails_marked_usable": emails, "suppressed_phones_marked_usable": phones},
    )


@dg.asset_check(asset=verified_leads, description="Leads no provider could verify are waiting in the DLQ.")
def verification_dead_letters(postgres: PostgresResource) -> dg.AssetCheckResult:
    """A warning, not a failure: those leads stay due and are retried after the back-off."""
    with postgres.connection() as conn:
        pending, oldest = conn.execute(_PENDING_DEAD_LETTERS, {"stage": STAGE}).fetchone()
    metadata: dict[str, object] = {"pending": pending}
    if oldest is not None:
        metadata["oldest"] = oldest.isoformat()
    return dg.AssetCheckResult(passed=pending == 0, severity=dg.AssetCheckSeverity.WARN, metadata=metadata)


_VERIFIED_SAMPLE = """
SELECT id::text AS id, verification_provider, mak, email, phone, email_verified, phone_verified,
       litigator, deceased, phone = ANY (dnc_phones) AS phone_in_dnc
FROM leads WHERE verified_at IS NOT NULL
ORDER BY verified_at DESC LIMIT %(limit)s
"""


@dg.asset_check(
    asset=verified_leads,
    blocking=True,
    description="The most recently verified leads match VerifiedLeadsTable (formats; usable flags consistent "
    "with the contact data, DNC and litigator/deceased flags).",
)
def verified_leads_match_schema(postgres: PostgresResource) -> dg.AssetCheckResult:
    """Read back what the run wrote, newest first: a wrong flag here would reach the campaign."""
    with postgres.connection() as conn:
        # Provider-supplied addresses with blanks are marked usable today; Instantly refuses them
        # and the push dead-letters them, so that finding warns instead of blocking (docs/runbook.md).
        return check_table_sample(conn, VerifiedLeadsTable, _VERIFIED_SAMPLE, key="id",
                                  warn_only=frozenset({"usable_email_is_an_address"}))
