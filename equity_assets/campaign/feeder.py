"""The feeder: which leads join a day's batch, committed before anything is pushed.

For one batch date: every active broker gets up to ``daily_cap`` minus what that date already
holds of its queued, contactable leads, best ``lead_score`` first; each gets a consent token and a
``campaign_sends`` row (status ``queued``), and ``campaign_queued`` events are written. A lead
stays ``queued`` until Instantly has taken it (the push turns it ``active``): the send row is what
keeps it out of later batches. The brokers are split into groups selected at once, each
group in one transaction: a crash leaves a group's selection whole or absent, and the push
resumes from ``campaign_sends`` alone.

"At most once per lead" is a database fact (``UNIQUE (lead_id)`` on ``campaign_sends``), and the
feeder never offers a lead that has a row; a selection holds its brokers' rows locked, so two
selections at once (two partitions, or two groups) cannot pick the same lead, nor exceed a
broker's cap.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import date, datetime

import psycopg

from ..observe.events import Event, Stage, record_lead_events_from
from ..security.consent import mint_for_numbered

ConnectionFactory = Callable[[], AbstractContextManager[psycopg.Connection]]

# A selection holds its brokers' rows for the rest of its transaction (in id order, so two
# selections over overlapping groups cannot deadlock): one broker's cap is counted and filled by
# one selection at a time, while groups of other brokers are selected in parallel. NO KEY UPDATE
# leaves the key-share locks of rows that reference a broker (leads assigned to it) unblocked.
_LOCK_BROKERS_SQL = "SELECT count(*) FROM (SELECT 1 FROM brokers WHERE id = ANY(%s) ORDER BY id FOR NO KEY UPDATE) b"
_ACTIVE_BROKERS_SQL = "SELECT id FROM brokers WHERE active ORDER BY id"

# One broker's next leads: walks `leads_feeder_idx` (broker, score DESC) WHERE queued AND verified
# in index order and stops at the limit. The ORDER BY must match the index exactly (a tie-breaker
# column turns it into a sort of all the broker's queued leads: 60+ ms instead of ~1 ms).
# Membership in contactable_leads (for this broker: a lead reassigned after 05:30 waits for the next
# refresh) carries the 05:30 decision; suppression is re-checked live, so an unsubscribe between
# 05:30 and 06:00 still counts. The membership test is a scalar subquery, probed per candidate in
# `contactable_leads_broker_lead_idx` (one broker's probes share a few leaves): as an EXISTS the
# planner misjudges the (broker, lead) pair as rare and hash-joins all the broker's ~10,000
# members before sorting (40 ms instead of 2-3 ms).
_BROKER_CANDIDATES = """
    SELECT l.id
    FROM leads l
    WHERE l.assigned_broker_id = {broker}
      AND l.campaign_status = 'queued'
      AND l.email_verified
      AND (SELECT true FROM contactable_leads c WHERE c.broker_id = l.assigned_broker_id AND c.lead_id = l.id)
      AND NOT EXISTS (SELECT 1 FROM suppression_list s
                      WHERE s.channel = 'email' AND s.value = l.email
                        AND (s.expires_at IS NULL OR s.expires_at > now()))
      AND NOT EXISTS (SELECT 1 FROM campaign_sends cs WHERE cs.lead_id = l.id)
    ORDER BY l.lead_score DESC NULLS LAST
    LIMIT {limit}
"""

#: The single-broker feeder query (what the benchmark times).
FEEDER_SQL = _BROKER_CANDIDATES.format(broker="%(broker_id)s", limit="%(limit)s")

# Every active broker at once; the row lock keeps a concurrent change (a merge deleting the lead, a
# status turning do_not_contact) from slipping in between choosing a lead and committing its send.
_DAY_SELECTION_SQL = """
SELECT q.broker_id, q.campaign_id, p.id
FROM (
    SELECT b.id AS broker_id,
           coalesce(b.instantly_campaign_id, %(default_campaign)s) AS campaign_id,
           greatest(b.daily_cap - (SELECT count(*) FROM campaign_sends s
                                   WHERE s.batch_date = %(batch_date)s AND s.broker_id = b.id), 0) AS room
    FROM brokers b
    WHERE b.active AND b.id = ANY(%(brokers)s)
) q
CROSS JOIN LATERAL ({candidates} FOR UPDATE OF l SKIP LOCKED) p
WHERE q.campaign_id IS NOT NULL AND q.room > 0
ORDER BY q.broker_id
""".format(candidates=_BROKER_CANDIDATES.format(broker="q.broker_id", limit="q.room"))

# The day's picks stay in the database: a numbered temp table that the tokens, the sends and the
# events are written from (the client only supplies the tokens' ids and nonce hashes), instead of
# 250,000 ids sent back and forth three times.
_CREATE_PICK_SQL = """
CREATE TEMP TABLE feeder_pick (
    n           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    broker_id   uuid NOT NULL,
    campaign_id text NOT NULL,
    lead_id     uuid NOT NULL
) ON COMMIT DROP
"""

_PICK_SQL = "INSERT INTO feeder_pick (broker_id, campaign_id, lead_id) " + _DAY_SELECTION_SQL

_INSERT_SENDS_SQL = """
INSERT INTO campaign_sends (batch_date, lead_id, broker_id, campaign_id, consent_token_id, status)
SELECT %s, p.lead_id, p.broker_id, p.campaign_id, t.token_id, 'queued'
FROM feeder_pick p JOIN unnest(%b::uuid[]) WITH ORDINALITY AS t(token_id, n) ON t.n = p.n
"""

_QUEUED_EVENTS = "SELECT lead_id, jsonb_build_object('broker_id', broker_id) FROM feeder_pick"


@dataclass(frozen=True)
class DaySelection:
    """What the feeder added to one batch date."""

    batch_date: date
    selected: int
    brokers_served: int
    brokers_without_campaign: int
    already_in_batch: int
    seconds: float
    #: where the time went: choosing, minting tokens, writing sends, events
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
    brokers: Sequence[uuid.UUID] | None = None,
) -> DaySelection:
    """Fill ``batch_date``'s batch up to each broker's cap, in the caller's transaction.

    ``brokers``: only these (active) brokers; all active brokers by default. Selections of
    disjoint broker groups can run at once, in separate transactions.
    """
    started = time.perf_counter()
    phases: dict[str, float] = {}
    mark = started

    def lap(phase: str) -> None:
        nonlocal mark
        now_ = time.perf_counter()
        phases[phase] = round(now_ - mark, 3)
        mark = now_

    brokers = list(brokers) if brokers is not None else [r[0] for r in conn.execute(_ACTIVE_BROKERS_SQL)]
    conn.execute(_LOCK_BROKERS_SQL, (brokers,))
    already = conn.execute("SELECT count(*) FROM campaign_sends WHERE batch_date = %s AND broker_id = ANY(%s)",
                           (batch_date, brokers)).fetchone()[0]
    conn.execute("DROP TABLE IF EXISTS feeder_pick")
    conn.execute(_CREATE_PICK_SQL)
    selected = conn.execute(
        _PICK_SQL, {"batch_date": batch_date, "default_campaign": default_campaign, "brokers": brokers}
    ).rowcount
    conn.execute("ANALYZE feeder_pick")
    brokers_served = conn.execute("SELECT count(DISTINCT broker_id) FROM feeder_pick").fetchone()[0]
    lap("choose_s")
    if selected:
        token_ids = mint_for_numbered(conn, "feeder_pick", selected, now=now, batch_date=batch_date)
        lap("tokens_s")
        conn.execute(_INSERT_SENDS_SQL, (batch_date, token_ids))
        lap("sends_s")
        # Unkeyed: the send row just inserted happens once in a lead's life (UNIQUE (lead_id)),
        # so its event does too, without a key claim per lead.
        record_lead_events_from(conn, Event.CAMPAIGN_QUEUED, stage=Stage.DAILY_CAMPAIGN_BATCH, rows=_QUEUED_EVENTS,
                                run_id=run_id, partition_key=batch_date.isoformat())
        lap("events_s")
    return DaySelection(
        batch_date=batch_date,
        selected=selected,
        brokers_served=brokers_served,
        brokers_without_campaign=brokers_without_campaign(conn, default_campaign),
        already_in_batch=already,
        seconds=time.perf_counter() - started,
        phases=phases,
    )


def select_day_in_groups(
    connection: ConnectionFactory,
    batch_date: date,
    *,
    default_campaign: str | None,
    now: datetime,
    run_id: str | None = None,
    groups: int = 2,
) -> DaySelection:
    """:func:`select_day` for the active brokers split into ``groups``, each group in its own
    transaction on its own connection, all at once; one :class:`DaySelection` for the date.

    A selection is write-bound in one database backend; groups put the database's other cores to
    work. Each group commits on its own: after a crash some groups may hold the day's leads and
    others none, and the re-run fills the rest (each broker up to its cap).
    """
    started = time.perf_counter()
    with connection() as conn:
        brokers = [r[0] for r in conn.execute(_ACTIVE_BROKERS_SQL)]
    parts = [brokers[k::groups] for k in range(max(1, min(groups, len(brokers))))]

    def select_group(part: list[uuid.UUID]) -> DaySelection:
        with connection() as conn:
            return select_day(conn, batch_date, default_campaign=default_campaign, now=now, run_id=run_id,
                              brokers=part)

    with ThreadPoolExecutor(max_workers=len(parts), thread_name_prefix="feeder") as pool:
        days = list(pool.map(select_group, parts))
    return DaySelection(
        batch_date=batch_date,
        selected=sum(d.selected for d in days),
        brokers_served=sum(d.brokers_served for d in days),
        brokers_without_campaign=days[0].brokers_without_campaign,
        already_in_batch=sum(d.already_in_batch for d in days),
        seconds=time.perf_counter() - started,
        # the slowest group's time in each phase (the groups run side by side)
        phases={**{k: max(d.phases.get(k, 0.0) for d in days) for k in days[0].phases}, "groups": len(parts)},
    )
