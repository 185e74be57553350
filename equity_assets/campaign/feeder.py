"""The feeder: which leads join a day's batch, committed before anything is pushed.

For one batch date, in one transaction: every active broker gets up to ``daily_cap`` minus what
that date already holds of its queued, contactable leads, best ``lead_score`` first; the leads
turn ``active``, each gets a consent token and a ``campaign_sends`` row (status ``queued``), and
``campaign_queued`` events are written. A crash before the commit leaves nothing behind; after it,
the push resumes from ``campaign_sends`` alone.

"At most once per lead" is a database fact (``UNIQUE (lead_id)`` on ``campaign_sends``), and the
feeder never offers a lead that has a row; selections are serialized by an advisory lock, so two
partitions materialized at once cannot pick the same lead, nor exceed a day's cap.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime

import psycopg

from ..observe.events import Event, Stage, record_lead_events
from ..security.consent import mint_many

SELECTION_LOCK_KEY = 7_204_111_008

# One broker's next leads: walks `leads_feeder_idx` (broker, score DESC) WHERE queued AND verified
# in index order and stops at the limit. The ORDER BY must match the index exactly (a tie-breaker
# column turns it into a sort of all the broker's queued leads: 60+ ms instead of ~1 ms).
# Membership in contactable_leads carries the 05:30 decision; suppression is re-checked live, so
# an unsubscribe between 05:30 and 06:00 still counts.
_BROKER_CANDIDATES = """
    SELECT l.id
    FROM leads l
    WHERE l.assigned_broker_id = {broker}
      AND l.campaign_status = 'queued'
      AND l.email_verified
      AND EXISTS (SELECT 1 FROM contactable_leads c WHERE c.lead_id = l.id)
      AND NOT EXISTS (SELECT 1 FROM suppression_list s
                      WHERE s.channel = 'email' AND s.value = l.email
                        AND (s.expires_at IS NULL OR s.expires_at > now()))
      AND NOT EXISTS (SELECT 1 FROM campaign_sends cs WHERE cs.lead_id = l.id)
    ORDER BY l.lead_score DESC NULLS LAST
    LIMIT {limit}
"""

#: The single-broker feeder query (what the benchmark times).
FEEDER_SQL = _BROKER_CANDIDATES.format(broker="%(broker_id)s", limit="%(limit)s")

# Every active broker at once; the lock keeps a concurrent status change from slipping in
# between choosing a lead and activating it.
_DAY_SELECTION_SQL = """
SELECT q.broker_id, q.campaign_id, p.id
FROM (
    SELECT b.id AS broker_id,
           coalesce(b.instantly_campaign_id, %(default_campaign)s) AS campaign_id,
           greatest(b.daily_cap - (SELECT count(*) FROM campaign_sends s
                                   WHERE s.batch_date = %(batch_date)s AND s.broker_id = b.id), 0) AS room
    FROM brokers b
    WHERE b.active
) q
CROSS JOIN LATERAL ({candidates} FOR UPDATE OF l SKIP LOCKED) p
WHERE q.campaign_id IS NOT NULL AND q.room > 0
ORDER BY q.broker_id
""".format(candidates=_BROKER_CANDIDATES.format(broker="q.broker_id", limit="q.room"))

_INSERT_SENDS_SQL = """
INSERT INTO campaign_sends (batch_date, lead_id, broker_id, campaign_id, consent_token_id, status)
SELECT %s, t.lead_id, t.broker_id, t.campaign_id, t.token_id, 'queued'
FROM unnest(%s::uuid[], %s::uuid[], %s::text[], %s::uuid[]) AS t(lead_id, broker_id, campaign_id, token_id)
"""

# Setting `added_to_campaign_at` here spares its trigger a PL/pgSQL call per lead (the trigger
# only fills it when a writer leaves it empty).
_ACTIVATE_SQL = """
UPDATE leads SET campaign_status = 'active', added_to_campaign_at = coalesce(added_to_campaign_at, now())
WHERE id = ANY(%s)
"""


@dataclass(frozen=True)
class DaySelection:
    """What the feeder added to one batch date."""

    batch_date: date
    selected: int
    brokers_served: int
    brokers_without_campaign: int
    already_in_batch: int
    seconds: float
    #: where the time went: choosing, minting tokens, writing sends, activating leads, events
    phases: dict[str, float] = field(default_factory=dict)


def brokers_without_campaign(conn: psycopg.Connection, default_campaign: str | None) -> int:
    """Active brokers that cannot be fed: no Instantly campaign of their own and no default."""
    if default_campaign:
        return 0
    return conn.execute(
        "SELECT count(*) FROM brokers WHERE active AND instantly_campaign_id IS NULL"
    ).fetchone()[0]


def select_day(
    conn: psycopg.Connection,
    batch_date: date,
    *,
    default_campaign: str | None,
    now: datetime,
    run_id: str | None = None,
) -> DaySelection:
    """Fill ``batch_date``'s batch up to each broker's cap, in the caller's transaction."""
    started = time.perf_counter()
    phases: dict[str, float] = {}
    mark = started

    def lap(phase: str) -> None:
        nonlocal mark
        now_ = time.perf_counter()
        phases[phase] = round(now_ - mark, 3)
        mark = now_

    conn.execute("SELECT pg_advisory_xact_lock(%s)", (SELECTION_LOCK_KEY,))
    already = conn.execute("SELECT count(*) FROM campaign_sends WHERE batch_date = %s", (batch_date,)).fetchone()[0]
    rows = conn.execute(
        _DAY_SELECTION_SQL, {"batch_date": batch_date, "default_campaign": default_campaign}
    ).fetchall()
    lap("choose_s")
    broker_ids = [r[0] for r in rows]
    campaign_ids = [r[1] for r in rows]
    lead_ids: list[uuid.UUID] = [r[2] for r in rows]
    if lead_ids:
        tokens = mint_many(conn, lead_ids, now=now, batch_date=batch_date)
        lap("tokens_s")
        conn.execute(_INSERT_SENDS_SQL, (batch_date, lead_ids, broker_ids, campaign_ids, [t.token_id for t in tokens]))
        lap("sends_s")
        conn.execute(_ACTIVATE_SQL, (lead_ids,))
        lap("activate_s")
        # Unkeyed: the send row just inserted happens once in a lead's life (UNIQUE (lead_id)),
        # so its event does too, without a key claim per lead.
        record_lead_events(
            conn, Event.CAMPAIGN_QUEUED, stage=Stage.DAILY_CAMPAIGN_BATCH, lead_ids=lead_ids,
            payloads=[{"broker_id": str(broker)} for broker in broker_ids],
            run_id=run_id, partition_key=batch_date.isoformat(), keyed=False,
        )
        lap("events_s")
    return DaySelection(
        batch_date=batch_date,
        selected=len(lead_ids),
        brokers_served=len(set(broker_ids)),
        brokers_without_campaign=brokers_without_campaign(conn, default_campaign),
        already_in_batch=already,
        seconds=time.perf_counter() - started,
        phases=phases,
    )
