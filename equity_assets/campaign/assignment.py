"""Broker assignment: each contactable lead goes to the least-loaded active broker covering its state.

Which leads: verified, status ``new``, no broker yet, a usable channel (verified email or phone),
not a litigator, not deceased. A lead without a usable channel is not assigned: it would sit in
``new`` forever and count against a broker's load without ever being worked.

Load: a broker's *open load* is the number of leads assigned to it in ``new``, ``queued`` or
``active``. Assignment is greedy — every lead goes to the covering broker with the least load at
that moment — and set-based: per state, the covering brokers' next "slots" (load + 1, load + 2,
...) are ranked, and the k-th best lead of the state (score, then id) takes the k-th lowest slot.
That is exactly what assigning one lead at a time would do, in one statement. States are done one
after another in alphabetical order, so a broker covering several states carries the load it
picked up in earlier states. Ties go to the broker with the smaller id.

Status: ``new`` -> ``queued`` once a lead has a usable channel and an active broker (this includes
leads that already had a broker, e.g. ones a broker entered). Leads with no covering broker stay
unassigned and are counted.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from equity_assets.db.locks import set_lock_timeout

#: One assignment at a time per database: two runs must not both read the same loads.
_ASSIGNMENT_LOCK = "verified_leads:assignment"  # name kept: a running old-version run holds the same lock

_CONTACTABLE = """
    l.verified_at IS NOT NULL
    AND (l.email_verified OR l.phone_verified)
    AND NOT l.litigator AND NOT l.deceased"""

_UNASSIGNED = f"""
    l.campaign_status = 'new' AND l.assigned_broker_id IS NULL
    AND {_CONTACTABLE}"""

# Every waiting lead once per pass, ranked within its state (best score first); the per-state
# statements then read this small table instead of scanning `leads` once per state.
_COLLECT_WAITING = f"""
CREATE TEMP TABLE assign_waiting ON COMMIT DROP AS
SELECT l.id, l.property_state AS state,
       row_number() OVER (PARTITION BY l.property_state ORDER BY l.lead_score DESC NULLS LAST, l.id) AS k
FROM leads l
WHERE {_UNASSIGNED}"""

_COVERED_STATES = """
SELECT DISTINCT w.state FROM assign_waiting w
WHERE EXISTS (SELECT 1 FROM brokers b WHERE b.active AND w.state = ANY (b.territory_states))
ORDER BY 1"""

# One state: the k-th lead takes the k-th lowest broker slot. A broker's load counts the leads
# it holds plus those this pass already gave it in earlier states.
_ASSIGN_STATE = """
WITH covering AS MATERIALIZED (
    SELECT b.id, coalesce(o.load, 0) + (SELECT count(*) FROM assign_pairs a WHERE a.broker_id = b.id) AS load
    FROM brokers b LEFT JOIN assign_open_load o ON o.broker_id = b.id
    WHERE b.active AND %(state)s = ANY (b.territory_states)
), slots AS (
    SELECT c.id AS broker_id, row_number() OVER (ORDER BY c.load + s.n, c.id) AS k
    FROM covering c
    CROSS JOIN LATERAL generate_series(1::bigint, %(waiting)s::bigint) AS s(n)
)
INSERT INTO assign_pairs (lead_id, broker_id)
SELECT w.id, s.broker_id FROM assign_waiting w JOIN slots s USING (k) WHERE w.state = %(state)s
"""

# Open load of every broker, counted once per pass.
_COUNT_OPEN_LOAD = """
CREATE TEMP TABLE assign_open_load ON COMMIT DROP AS
SELECT assigned_broker_id AS broker_id, count(*) AS load
FROM leads
WHERE assigned_broker_id IS NOT NULL AND campaign_status IN ('new', 'queued', 'active')
GROUP BY assigned_broker_id"""

# Keyed temp tables on both sides: whatever join order the planner picks (even with stale
# statistics on leads) is a key lookup, never a rescan.
_APPLY_PAIRS = """
UPDATE leads l
SET assigned_broker_id = p.broker_id, campaign_status = 'queued'
FROM assign_pairs p
WHERE l.id = p.lead_id
  AND l.assigned_broker_id IS NULL AND l.campaign_status = 'new'  -- re-checked if a row changed meanwhile
"""

_QUEUE_ALREADY_ASSIGNED = f"""
UPDATE leads l SET campaign_status = 'queued'
FROM brokers b
WHERE l.assigned_broker_id = b.id AND b.active
  AND l.campaign_status = 'new' AND {_CONTACTABLE}
"""


@dataclass(frozen=True)
class AssignmentCounts:
    """What one assignment pass did."""

    assigned: int  # leads that got a broker (and were queued)
    queued: int  # leads moved new -> queued in total (assigned now or already assigned)
    unassigned_no_broker: int  # contactable leads left without a covering broker

    def as_metadata(self) -> dict[str, int]:
        return {"assigned": self.assigned, "queued": self.queued, "unassigned_no_broker": self.unassigned_no_broker}


def assign_leads(conn: psycopg.Connection) -> AssignmentCounts:
    """Assign every waiting contactable lead and queue it; inside the caller's transaction."""
    set_lock_timeout(conn)
    conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (_ASSIGNMENT_LOCK,))
    conn.execute(_COLLECT_WAITING)
    conn.execute("CREATE INDEX ON assign_waiting (state, k)")  # state may be NULL: no covering broker
    conn.execute("CREATE TEMP TABLE assign_pairs (lead_id uuid PRIMARY KEY, broker_id uuid NOT NULL) ON COMMIT DROP")
    conn.execute("CREATE INDEX ON assign_pairs (broker_id)")
    conn.execute(_COUNT_OPEN_LOAD)
    conn.execute("ANALYZE assign_waiting")
    waiting = dict(conn.execute("SELECT state, count(*) FROM assign_waiting GROUP BY state").fetchall())
    for state in [row[0] for row in conn.execute(_COVERED_STATES).fetchall()]:
        conn.execute(_ASSIGN_STATE, {"state": state, "waiting": waiting[state]})
    conn.execute("ANALYZE assign_pairs")
    assigned = conn.execute(_APPLY_PAIRS).rowcount
    queued_already_assigned = conn.execute(_QUEUE_ALREADY_ASSIGNED).rowcount
    conn.execute("DROP TABLE assign_waiting, assign_pairs, assign_open_load")
    return AssignmentCounts(
        assigned=assigned,
        queued=assigned + queued_already_assigned,
        unassigned_no_broker=sum(waiting.values()) - assigned,
    )
