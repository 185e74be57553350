"""The Instantly webhook sensor: inbox rows → `email_replies` runs, one per event."""

import dagster as dg

from ..db.resources import PostgresResource
from .assets import email_replies
from .inbox import IGNORED_EVENT_TYPES, PROVIDER

email_replies_job = dg.define_asset_job(
    "email_replies_job", selection=[email_replies], description="classify inbox events and apply their effects"
)

MAX_RUNS_PER_TICK = 200

# New events after the cursor, and events whose earlier try failed and whose retry time has come.
_NEW_SQL = """
SELECT id FROM webhook_events
WHERE provider = %s AND status = 'pending' AND id > %s AND NOT (event_type = ANY(%s))
ORDER BY id LIMIT %s
"""
_RETRY_SQL = """
SELECT id, attempts FROM webhook_events
WHERE provider = %s AND status = 'pending' AND attempts > 0 AND next_attempt_at <= now()
ORDER BY next_attempt_at, id LIMIT %s
"""


def _request(event_id: int, run_key: str) -> dg.RunRequest:
    return dg.RunRequest(
        run_key=run_key,
        run_config={"ops": {"email_replies": {"config": {"event_ids": [event_id]}}}},
        tags={"equity/webhook_event_id": str(event_id)},
    )


@dg.sensor(job=email_replies_job, minimum_interval_seconds=15, default_status=dg.DefaultSensorStatus.RUNNING)
def instantly_webhook_sensor(context: dg.SensorEvaluationContext, postgres: PostgresResource) -> dg.SensorResult:
    """Each new Instantly event worth reading → a run keyed by its id; the cursor is the last id seen.

    A retry of a failed event is keyed by id and try number, so each try runs once; the run itself
    parks the event in the DLQ after its last try. Sent/opened/clicked events are not worth a run:
    the next `email_replies` run marks them processed in bulk.
    """
    cursor = int(context.cursor or 0)
    with postgres.connection() as conn:
        new = [r[0] for r in conn.execute(_NEW_SQL, (PROVIDER, cursor, sorted(IGNORED_EVENT_TYPES), MAX_RUNS_PER_TICK))]
        retries = conn.execute(_RETRY_SQL, (PROVIDER, MAX_RUNS_PER_TICK)).fetchall()
    requests = [_request(i, f"webhook_event:{i}") for i in new]
    requests += [_request(i, f"webhook_event:{i}:try{tries + 1}") for i, tries in retries if i <= cursor]
    if not requests:
        return dg.SensorResult(skip_reason="no new or due inbox events", cursor=str(cursor))
    return dg.SensorResult(run_requests=requests, cursor=str(max([cursor, *new])))
