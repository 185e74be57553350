"""Checks on the voice assets: every call had written consent for its number; effects of bookings applied."""

import dagster as dg

from ..db.resources import PostgresResource
from .assets import call_outcomes, voice_calls

# A call placed without a written-consent grant for the dialled number made before the call.
_CALLS_WITHOUT_CONSENT_SQL = """
SELECT count(*) FROM calls c
WHERE c.vapi_call_id IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM lead_consent_audit a
                  WHERE a.lead_id = c.lead_id AND a.decision = 'granted' AND a.phone_number = c.dialed_number
                    AND a.disclosure_version IS NOT NULL AND a.created_at <= c.created_at)
"""
_TWO_OPEN_CALLS_SQL = """
SELECT count(*) FROM (SELECT lead_id FROM calls WHERE status NOT IN ('ended', 'failed')
                      AND created_at > now() - interval '2 hours' GROUP BY lead_id HAVING count(*) > 1) t
"""
_UNAPPLIED_BOOKINGS_SQL = """
SELECT count(*) FROM calls c JOIN leads l ON l.id = c.lead_id
WHERE c.outcome = 'booked'
  AND (l.campaign_status <> 'converted'
       OR NOT EXISTS (SELECT 1 FROM billing_events b WHERE b.lead_id = c.lead_id AND b.event_type = 'appointment_set')
       OR NOT EXISTS (SELECT 1 FROM broker_notifications n WHERE n.call_id = c.id))
"""


def _count(postgres: PostgresResource, sql: str) -> int:
    with postgres.connection() as conn:
        return conn.execute(sql).fetchone()[0]


@dg.asset_check(asset=voice_calls, blocking=True,
                description="Every placed call had a written-consent grant for exactly the number dialled.")
def calls_had_consent(postgres: PostgresResource) -> dg.AssetCheckResult:
    bad = _count(postgres, _CALLS_WITHOUT_CONSENT_SQL)
    return dg.AssetCheckResult(passed=bad == 0, metadata={"calls_without_consent": bad})


@dg.asset_check(asset=voice_calls, description="No lead has two calls open at once.")
def one_open_call_per_lead(postgres: PostgresResource) -> dg.AssetCheckResult:
    bad = _count(postgres, _TWO_OPEN_CALLS_SQL)
    return dg.AssetCheckResult(passed=bad == 0, metadata={"leads_with_two_open_calls": bad})


@dg.asset_check(asset=call_outcomes, description="Every booked call converted its lead, billed the broker "
                "and queued the broker's notification.")
def bookings_applied(postgres: PostgresResource) -> dg.AssetCheckResult:
    bad = _count(postgres, _UNAPPLIED_BOOKINGS_SQL)
    return dg.AssetCheckResult(passed=bad == 0, metadata={"unapplied_bookings": bad})


voice_checks = [calls_had_consent, one_open_call_per_lead, bookings_applied]
