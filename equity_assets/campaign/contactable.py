"""The contactable set (in place of a ``mv_contactable_leads`` view), maintained incrementally.

A lead is contactable when it has a usable verified email (verified, and no email result code
the code map marks unusable or suppressing), the address is not on the suppression list, a broker
is assigned, and its status is ``new``, ``queued`` or ``active`` (so never ``do_not_contact``).
Email outreach is opt-out (docs/compliance.md): consent is not part of this rule.

Each refresh re-evaluates only what may have changed since the last one:
- leads whose ``updated_at`` is at or after the watermark;
- rows whose email was suppressed since then (found through ``contactable_leads.email``);
- leads whose email's suppression expired, or was deleted or edited (queued by a trigger).

The watermark is the previous refresh's start minus ``lookback``: ``updated_at`` is a
transaction's start time, so a long transaction that commits after a refresh has rows stamped
before it. Any transaction shorter than the lookback is caught next time; a full rebuild
(``full=True``) reconciles everything else, e.g. after editing ``verification_code_map``.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

import psycopg

# Serializes refreshes: two at once would both move the watermark and double-count the size.
REFRESH_LOCK_KEY = 7_204_111_007
DEFAULT_LOOKBACK = timedelta(hours=1)

# Over `leads l`. The code-map subquery is uncorrelated, so it runs once per statement.
CONTACTABLE_PREDICATE = """
    l.email IS NOT NULL
    AND l.email_verified
    AND l.assigned_broker_id IS NOT NULL
    AND l.campaign_status IN ('new', 'queued', 'active')
    AND NOT (l.email_codes && (SELECT coalesce(array_agg(m.code), '{}') FROM verification_code_map m
                               WHERE m.channel = 'email' AND (m.suppress OR NOT m.usable)))
    AND NOT EXISTS (SELECT 1 FROM suppression_list s
                    WHERE s.channel = 'email' AND s.value = l.email
                      AND (s.expires_at IS NULL OR s.expires_at > now()))
"""

# One pass over the leads to re-evaluate records the rule's verdict next to their current
# membership, into a temporary table (no WAL, dropped at commit). Everything after that touches
# only the members that actually change: a score change, the bulk of daily changes, writes nothing.
_CANDIDATES_TABLE = """
CREATE TEMP TABLE IF NOT EXISTS contactable_candidates (
    id uuid, broker_id uuid, email text, ok boolean, member boolean, differs boolean
) ON COMMIT DROP
"""
_ADD_CANDIDATES = """
INSERT INTO contactable_candidates (id, broker_id, email, ok, member, differs)
SELECT l.id, l.assigned_broker_id, l.email, ({predicate}), cur.lead_id IS NOT NULL,
       (cur.broker_id, cur.email) IS DISTINCT FROM (l.assigned_broker_id, l.email)
FROM leads l LEFT JOIN contactable_leads cur ON cur.lead_id = l.id
WHERE {where}
"""
_SINCE_WATERMARK = "l.updated_at >= %(watermark)s"
# Disjoint from the watermark branch, so no lead is listed twice. No index on leads.email is
# assumed: a scan, but only on a day a suppression was lifted.
_RELEASED = "l.email = ANY(%(emails)s) AND l.updated_at < %(watermark)s"
_TALLY = """
SELECT count(*),
       coalesce(array_agg(id) FILTER (WHERE member AND NOT ok), '{}'),
       count(*) FILTER (WHERE ok AND NOT member),
       count(*) FILTER (WHERE ok AND member AND differs)
FROM contactable_candidates
"""
# A newly suppressed address leaves the set directly, through the email index.
_REMOVE_SUPPRESSED = """
DELETE FROM contactable_leads t
WHERE t.email = ANY(%s)
  AND EXISTS (SELECT 1 FROM suppression_list s
              WHERE s.channel = 'email' AND s.value = t.email AND (s.expires_at IS NULL OR s.expires_at > now()))
"""
# By primary key: a few thousand probes beat scanning the whole set for a hash join.
_REMOVE = "DELETE FROM contactable_leads WHERE lead_id = ANY(%s)"
_UPSERT = """
INSERT INTO contactable_leads (lead_id, broker_id, email, refreshed_at)
SELECT id, broker_id, email, now() FROM contactable_candidates WHERE ok AND (NOT member OR differs)
ON CONFLICT (lead_id) DO UPDATE
    SET broker_id = EXCLUDED.broker_id, email = EXCLUDED.email, refreshed_at = EXCLUDED.refreshed_at
"""
# Members whose lead row is gone (only a full rebuild looks for them).
_DROP_ORPHANS = "DELETE FROM contactable_leads t WHERE NOT EXISTS (SELECT 1 FROM leads l WHERE l.id = t.lead_id)"


@dataclass(frozen=True)
class RefreshCounts:
    """What one refresh did; ``size`` is the set's size afterwards."""

    mode: str
    scanned: int
    added: int
    removed: int
    updated: int
    size: int
    watermark: datetime | None
    seconds: float

    def as_metadata(self) -> dict[str, object]:
        data = asdict(self)
        data["watermark"] = self.watermark.isoformat() if self.watermark else None
        data["seconds"] = round(self.seconds, 3)
        return data


def _suppression_changes(conn: psycopg.Connection, watermark: datetime) -> tuple[list[str], list[str]]:
    """(emails suppressed since the watermark, emails whose suppression ended or changed)."""
    suppressed = [r[0] for r in conn.execute(
        "SELECT value FROM suppression_list WHERE channel = 'email' AND created_at >= %s", (watermark,)
    )]
    expired = [r[0] for r in conn.execute(
        "SELECT value FROM suppression_list WHERE channel = 'email' AND expires_at >= %s AND expires_at <= now()",
        (watermark,),
    )]
    # Only rows this transaction can see are taken; later ones wait for the next refresh.
    requeued = [r[0] for r in conn.execute("DELETE FROM contactable_recheck_emails RETURNING email")]
    return suppressed, sorted(set(expired) | set(requeued))


def _add_candidates(conn: psycopg.Connection, where: str, params: dict[str, object] | None = None) -> None:
    conn.execute(_ADD_CANDIDATES.format(predicate=CONTACTABLE_PREDICATE, where=where), params)


def collect_candidates(conn: psycopg.Connection, watermark: datetime | None, released: list[str]) -> None:
    """Fill ``contactable_candidates``: every lead (``watermark`` None) or what may have changed."""
    conn.execute(_CANDIDATES_TABLE)
    conn.execute("TRUNCATE contactable_candidates")
    if watermark is None:
        _add_candidates(conn, "true")
        return
    _add_candidates(conn, _SINCE_WATERMARK, {"watermark": watermark})
    if released:
        _add_candidates(conn, _RELEASED, {"emails": released, "watermark": watermark})


def refresh_contactable(
    conn: psycopg.Connection, *, full: bool = False, lookback: timedelta = DEFAULT_LOOKBACK
) -> RefreshCounts:
    """Bring ``contactable_leads`` up to date in the caller's transaction; a full rebuild the first time."""
    started = time.perf_counter()
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (REFRESH_LOCK_KEY,))
    watermark, size = conn.execute(
        "SELECT watermark, size FROM contactable_refresh_state WHERE singleton FOR UPDATE"
    ).fetchone()
    mode = "full" if full or watermark is None else "incremental"
    # The planned cost looks big even when the work is small; compiling it (JIT) took longer than running it.
    conn.execute("SET LOCAL jit = off")
    removed = 0
    if mode == "full":
        conn.execute("DELETE FROM contactable_recheck_emails")
        removed += conn.execute(_DROP_ORPHANS).rowcount
        collect_candidates(conn, None, [])
    else:
        suppressed, released = _suppression_changes(conn, watermark)
        if suppressed:
            removed += conn.execute(_REMOVE_SUPPRESSED, (suppressed,)).rowcount
        collect_candidates(conn, watermark, released)
    scanned, leaving, added, updated = conn.execute(_TALLY).fetchone()
    removed += conn.execute(_REMOVE, (leaving,)).rowcount
    conn.execute(_UPSERT)
    if mode == "full":
        size = conn.execute("SELECT count(*) FROM contactable_leads").fetchone()[0]
        # The feeder's plan depends on these statistics; don't wait for autovacuum to notice.
        # (Through the owner's maintenance function: our role's own ANALYZE would be skipped.)
        conn.execute("SELECT analyze_pipeline_table('contactable_leads')")
    else:
        size = size + added - removed
    new_watermark = conn.execute(
        """UPDATE contactable_refresh_state
           SET watermark = now() - make_interval(secs => %s), size = %s, refreshed_at = now()
           WHERE singleton RETURNING watermark""",
        (lookback.total_seconds(), size),
    ).fetchone()[0]
    return RefreshCounts(mode, scanned, added, removed, updated, size, new_watermark, time.perf_counter() - started)
