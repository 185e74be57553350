"""The lead funnel over a rolling window: counts, conversion, stage durations, errors, throughput.

Each lead's entry into a stage is the first time it was seen there, from the table that holds
the stage's truth (uploads, leads, billing) or the once-per-lead event the stage writes. Every
read is bounded by the window's start on an indexed time column (and, for events, prunes the
monthly partitions), so the cost follows the window's traffic, not the tables' size.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg

from .events import FUNNEL, Event

# Stages whose per-lead entry is an event (first one per lead); the others come from tables.
_EVENT_STAGES = [str(e) for e in FUNNEL[3:9]]

_STAGES_SQL = """
WITH entries (lead_id, stage, entered_at) AS (
    SELECT ls.lead_id, 1, min(u.received_at)
    FROM uploads u JOIN lead_sources ls ON ls.upload_id = u.id
    WHERE u.received_at >= %(since)s GROUP BY ls.lead_id
    UNION ALL
    SELECT id, 2, created_at FROM leads WHERE created_at >= %(since)s
    UNION ALL
    SELECT id, 3, verified_at FROM leads WHERE email_verified AND verified_at >= %(since)s
    UNION ALL
    SELECT lead_id, 3 + array_position(%(event_stages)s::text[], event_type), min(created_at)
    FROM pipeline_events
    WHERE event_type = ANY(%(event_stages)s::text[]) AND lead_id IS NOT NULL AND created_at >= %(since)s
    GROUP BY lead_id, event_type
    UNION ALL
    SELECT lead_id, 10, min(occurred_at) FROM billing_events
    WHERE event_type = 'application_submitted' AND occurred_at >= %(since)s GROUP BY lead_id
), steps AS (
    -- per lead, from entering a stage to entering the next one
    SELECT a.stage, extract(epoch FROM b.entered_at - a.entered_at) AS seconds
    FROM entries a JOIN entries b ON b.lead_id = a.lead_id AND b.stage = a.stage + 1
)
SELECT s.stage, coalesce(e.leads, 0), coalesce(e.last_hour, 0), coalesce(st.advanced, 0), st.p50, st.p95
FROM generate_series(1, 10) AS s(stage)
LEFT JOIN (SELECT stage, count(*) AS leads, count(*) FILTER (WHERE entered_at >= %(hour_ago)s) AS last_hour
           FROM entries GROUP BY stage) e USING (stage)
LEFT JOIN (SELECT stage, count(*) AS advanced,
                  percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds) FILTER (WHERE seconds >= 0) AS p50,
                  percentile_cont(0.95) WITHIN GROUP (ORDER BY seconds) FILTER (WHERE seconds >= 0) AS p95
           FROM steps GROUP BY stage) st USING (stage)
ORDER BY s.stage
"""

#: An error event → the success event it is the failing twin of: rate = errors / (errors + successes).
ERROR_EVENTS: dict[Event, Event] = {
    Event.UPLOAD_REJECTED: Event.UPLOAD_RECEIVED,
    Event.UPLOAD_FAILED: Event.UPLOAD_STAGED,
    Event.EMAIL_BOUNCED: Event.EMAIL_SENT,
    Event.BROKER_LOGIN_FAILED: Event.BROKER_LOGIN,
}

_EVENT_COUNTS_SQL = """
SELECT event_type, count(*) FROM pipeline_events
WHERE event_type = ANY(%(types)s::text[]) AND created_at >= %(since)s GROUP BY event_type
"""

_HEALTH_SQL = """
SELECT (SELECT count(*) FROM campaign_sends WHERE status = 'queued')  AS sends_queued,
       (SELECT count(*) FROM campaign_sends WHERE status = 'failed')  AS sends_failed,
       (SELECT count(*) FROM pipeline_dlq WHERE status = 'pending')   AS dlq_pending
"""


@dataclass(frozen=True)
class StageFigures:
    stage: str
    leads: int  # leads that entered the stage in the window
    last_hour: int  # of which in the last hour: the stage's throughput per hour
    advanced: int  # of `leads`, how many entered the next stage (so far)
    p50_s: float | None  # time to the next stage, over leads that advanced
    p95_s: float | None

    @property
    def conversion_pct(self) -> float | None:
        return round(100.0 * self.advanced / self.leads, 2) if self.leads else None


@dataclass(frozen=True)
class Funnel:
    window: timedelta
    stages: list[StageFigures]
    errors: dict[str, tuple[int, float | None]]  # error event → (count, rate % among its attempts)
    health: dict[str, int]

    def markdown(self) -> str:
        hours = self.window.total_seconds() / 3600
        lines = [f"Leads entering each stage in the last {hours:g} h.", "",
                 "| stage | leads | last hour | → next % | p50 to next | p95 to next |",
                 "|---|---:|---:|---:|---:|---:|"]
        for s, last in zip(self.stages, [False] * (len(self.stages) - 1) + [True], strict=True):
            pct = "" if last or s.conversion_pct is None else f"{s.conversion_pct:.1f}"
            lines.append(f"| {s.stage} | {s.leads} | {s.last_hour} | {pct} | {_duration(s.p50_s)} | {_duration(s.p95_s)} |")
        lines += ["", "| error event | count | rate % |", "|---|---:|---:|"]
        lines += [f"| {name} | {n} | {'' if rate is None else f'{rate:.2f}'} |" for name, (n, rate) in self.errors.items()]
        return "\n".join(lines)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def measure_funnel(conn: psycopg.Connection, *, window: timedelta, now: datetime | None = None) -> Funnel:
    """The funnel's figures over ``window`` ending ``now`` (the database's clock by default)."""
    now = now or conn.execute("SELECT now()").fetchone()[0]
    since = now - window
    rows = conn.execute(_STAGES_SQL, {"since": since, "hour_ago": now - timedelta(hours=1),
                                      "event_stages": _EVENT_STAGES}).fetchall()
    stages = [StageFigures(str(FUNNEL[n - 1]), int(leads), int(hour), int(adv),
                           None if p50 is None else float(p50), None if p95 is None else float(p95))
              for n, leads, hour, adv, p50, p95 in rows]
    types = [str(t) for pair in ERROR_EVENTS.items() for t in pair]
    counts = dict(conn.execute(_EVENT_COUNTS_SQL, {"types": types, "since": since}).fetchall())
    errors: dict[str, tuple[int, float | None]] = {}
    for error, success in ERROR_EVENTS.items():
        bad, good = counts.get(str(error), 0), counts.get(str(success), 0)
        errors[str(error)] = (bad, round(100.0 * bad / (bad + good), 2) if bad + good else None)
    health = dict(zip(("sends_queued", "sends_failed", "dlq_pending"), conn.execute(_HEALTH_SQL).fetchone(),
                      strict=True))
    return Funnel(window, stages, errors, health)
