"""What starts voice runs: the VAPI webhook sensor (→ `call_outcomes`) and the 15-minute calling schedule."""

from datetime import datetime, time, timezone
from zoneinfo import ZoneInfo

import dagster as dg

from ..db.resources import PostgresResource
from ..observe.inbox import retries_due
from .assets import call_outcomes, voice_calls
from .inbox import HANDLED_TYPES
from .outcomes import PROVIDER

call_outcomes_job = dg.define_asset_job("call_outcomes_job", selection=[call_outcomes],
                                        description="apply VAPI status updates and end-of-call reports")
voice_calls_job = dg.define_asset_job("voice_calls_job", selection=[voice_calls],
                                      description="gate eligible leads and place AI voice calls")

MAX_EVENTS_PER_RUN = 100
# US zones from the east coast to Hawaii: the window is "open" while 08:00-21:00 holds in one of them.
US_ZONES = ("America/Puerto_Rico", "America/New_York", "America/Chicago", "America/Denver", "America/Phoenix",
            "America/Los_Angeles", "America/Anchorage", "Pacific/Honolulu", "Pacific/Guam")

_NEW_SQL = """
SELECT id FROM webhook_events
WHERE provider = %s AND status = 'pending' AND id > %s AND event_type = ANY(%s)
ORDER BY id LIMIT %s
"""
_NOTIFY_SQL = "SELECT min(id), count(*) FROM broker_notifications WHERE status = 'pending' AND next_attempt_at <= now()"


def _request(ids: list[int], run_key: str) -> dg.RunRequest:
    return dg.RunRequest(run_key=run_key,
                         run_config={"ops": {"call_outcomes": {"config": {"event_ids": ids}}}},
                         tags={"equity/webhook_events": f"{ids[0]}-{ids[-1]}" if ids else "notifications"})


@dg.sensor(job=call_outcomes_job, minimum_interval_seconds=15, default_status=dg.DefaultSensorStatus.RUNNING)
def vapi_webhook_sensor(context: dg.SensorEvaluationContext, postgres: PostgresResource) -> dg.SensorResult:
    """New VAPI messages in the inbox → `call_outcomes` runs of up to 100 events, keyed by their ids.

    The cursor is the last event id requested. A failed event's retry is keyed by id and try number;
    due broker notification retries get a run keyed by the minute, so each retry runs once.
    """
    cursor = int(context.cursor or 0)
    with postgres.connection() as conn:
        new = [r[0] for r in conn.execute(_NEW_SQL, (PROVIDER, cursor, list(HANDLED_TYPES), 10 * MAX_EVENTS_PER_RUN))]
        retries = retries_due(conn, PROVIDER, up_to_id=cursor, limit=MAX_EVENTS_PER_RUN)
        due_notifications = conn.execute(_NOTIFY_SQL).fetchone()[1]
    requests = [_request(chunk, f"vapi_events:{chunk[0]}-{chunk[-1]}")
                for chunk in (new[i:i + MAX_EVENTS_PER_RUN] for i in range(0, len(new), MAX_EVENTS_PER_RUN))]
    requests += [_request([i], f"vapi_event:{i}:try{tries + 1}") for i, tries in retries]
    if not requests and due_notifications:
        minute = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M")
        requests.append(_request([], f"broker_notifications:{minute}"))
    if not requests:
        return dg.SensorResult(skip_reason="no new VAPI messages or due notifications", cursor=str(cursor))
    return dg.SensorResult(run_requests=requests, cursor=str(max([cursor, *new])))


def any_window_open(at: datetime) -> bool:
    """True while 08:00–21:00 local holds somewhere in the US: the only times a call may be placed."""
    return any(time(8) <= at.astimezone(ZoneInfo(z)).time() < time(21) for z in US_ZONES)


@dg.schedule(job=voice_calls_job, cron_schedule="*/15 * * * *", execution_timezone="UTC",
             default_status=dg.DefaultScheduleStatus.RUNNING)
def voice_calls_schedule(context: dg.ScheduleEvaluationContext):
    """Every 15 minutes while a calling window is open somewhere; the gate decides per lead."""
    at = context.scheduled_execution_time or datetime.now(timezone.utc)
    if not any_window_open(at):
        return dg.SkipReason("no US calling window is open")
    return dg.RunRequest(run_key=at.strftime("voice_calls:%Y%m%dT%H%M"))
