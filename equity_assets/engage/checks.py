"""Checks on `email_replies`: revocations fully applied; the inbox draining."""

import dagster as dg

from ..db.resources import PostgresResource
from .assets import email_replies

_UNAPPLIED_REVOCATIONS_SQL = """
SELECT count(*) FROM email_replies r JOIN leads l ON l.id = r.lead_id
WHERE r.revocation
  AND (l.campaign_status <> 'do_not_contact' OR l.consent
       OR NOT EXISTS (SELECT 1 FROM suppression_list s WHERE s.channel = 'email' AND s.value = r.lead_email))
"""

_STUCK_SQL = """
SELECT count(*) FROM webhook_events
WHERE provider = 'instantly' AND status = 'pending' AND received_at < now() - interval '1 hour'
"""


@dg.asset_check(asset=email_replies, blocking=True, description="Every revocation left its lead do-not-contact, "
                "without consent, with the address suppressed.")
def revocations_applied(postgres: PostgresResource) -> dg.AssetCheckResult:
    with postgres.connection() as conn:
        unapplied = conn.execute(_UNAPPLIED_REVOCATIONS_SQL).fetchone()[0]
    return dg.AssetCheckResult(passed=unapplied == 0, metadata={"unapplied_revocations": unapplied},
                               severity=dg.AssetCheckSeverity.ERROR)


@dg.asset_check(asset=email_replies, description="No Instantly event waits in the inbox for more than an hour.")
def inbox_drained(postgres: PostgresResource) -> dg.AssetCheckResult:
    with postgres.connection() as conn:
        stuck = conn.execute(_STUCK_SQL).fetchone()[0]
    return dg.AssetCheckResult(passed=stuck == 0, metadata={"pending_over_1h": stuck},
                               severity=dg.AssetCheckSeverity.WARN)


engage_checks = [revocations_applied, inbox_drained]
