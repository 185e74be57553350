"""The Instantly webhook sensor: new inbox rows → `email_replies` runs, keyed by event id."""

import dagster as dg

from ..db.resources import PostgresResource
from ..observe.inbox import retries_due
from .assets import email_replies
from .inbox import IGNORED_EVENT_TYPES, PROVIDER

email_replies_job = dg.define_asset_job(
    "email_replies_job", selection=[email_replies], description="classify inbox events and apply their effects"
)

#: New events per run. A Dagster run costs ~1-2 s of overhead, so one run per reply would fall behind
#: a busy morning; a run takes the events after the cursor up to this many.
EVENTS_PER_RUN = 100
MAX_RUNS_PER_TICK = 20

# New events after the cursor, and events whose earlier try failed and whose retry time has come.
_NEW_SQL = """
SELECT id FROM webhook_events
WHERE provider = %s AND status = 'pending' AND id > %s AND NOT (event_type = ANY(%s))
ORDER BY id LIMIT %s
"""
# Ids are handed out at insert but become visible at commit, so a slow transaction can commit an
# id below the cursor; anything still untouched a minute later is requested on its own.
_LATE_SQL = """
SELECT id FROM webhook_events
WHERE provider = %s AND status = 'pending' AND attempts = 0 AND id <= %s
  AND received_at < now() - interval '1 minute' AND NOT (event_type = ANY(%s))
ORDER BY id LIMIT %s
"""


def _request(event_ids: list[int], run_key: str) -> dg.RunRequest:
    return dg.RunRequest(
        run_key=run_key,
        run_config={"ops": {"email_replies": {"config": {"event_ids": event_ids}}}},
        tags={"equity/webhook_events": f"{event_ids[0]}-{event_ids[-1]}"},
    )


@dg.sensor(job=email_replies_job, minimum_interval_seconds=15, default_status=dg.DefaultSensorStatus.RUNNING)
def instantly_webhook_sensor(context: dg.SensorEvaluationContext, postgres: PostgresResource) -> dg.SensorResult:
    """New Instantly events worth reading → runs of up to 100 events, each keyed by the id of its
    newest event (the events after the previous key up to that id belong to that run alone); the
    cursor is the last id requested.

    A retry of a failed event is its own run, keyed by id and try number, so each try runs once;
    the run parks the event in the DLQ after its last try. Sent/opened/clicked events are not worth
    a run: the next `email_replies` run marks them processed in bulk.
    """
    cursor = int(context.cursor or 0)
    with postgres.connection() as conn:
        new = [r[0] for r in conn.execute(_NEW_SQL, (PROVIDER, cursor, sorted(IGNORED_EVENT_TYPES),
                                                     EVENTS_PER_RUN * MAX_RUNS_PER_TICK))]
        retries = retries_due(conn, PROVIDER, up_to_id=cursor, limit=MAX_RUNS_PER_TICK)
        late = [r[0] for r in conn.execute(_LATE_SQL, (PROVIDER, cursor, sorted(IGNORED_EVENT_TYPES), EVENTS_PER_RUN))]
    batches = [new[i:i + EVENTS_PER_RUN] for i in range(0, len(new), EVENTS_PER_RUN)]
    requests = [_request(batch, f"webhook_event:{batch[-1]}") for batch in batches]
    requests += [_request([i], f"webhook_event:{i}:try{tries + 1}") for i, tries in retries]
    requests += [_request([i], f"webhook_event:{i}:late") for i in late]
    if not requests:
        return dg.SensorResult(skip_reason="no new or due inbox events", cursor=str(cursor))
    return dg.SensorResult(run_requests=requests, cursor=str(max([cursor, *new])))
