"""The dead-letter redrive job: each stage's due letters handed back, one transaction per stage."""

from datetime import timedelta

import dagster as dg

from ..db.resources import PostgresResource
from .dlq import DEFAULT_BASE_DELAY, DEFAULT_MAX_TRIES, pending_stages, redrive_stage


class RedriveConfig(dg.Config):
    max_tries: int = DEFAULT_MAX_TRIES
    base_delay_minutes: float = DEFAULT_BASE_DELAY.total_seconds() / 60


@dg.op
def redrive_dead_letters(context: dg.OpExecutionContext, config: RedriveConfig,
                         postgres: PostgresResource) -> dg.Output[None]:
    """Retry every stage's due `pending` dead letters with backoff; `dead` after the last try."""
    with postgres.connection() as conn:
        stages = pending_stages(conn)
    totals: dict[str, int] = {}
    for stage in stages:
        with postgres.connection() as conn:  # one stage's failure does not undo another's
            summary = redrive_stage(conn, stage, max_tries=config.max_tries,
                                    base_delay=timedelta(minutes=config.base_delay_minutes))
        context.log.info("redrive %s: %s", stage, summary.as_dict())
        for key, value in summary.as_dict().items():
            totals[key] = totals.get(key, 0) + value
    return dg.Output(None, metadata={"stages": len(stages), **totals})


@dg.job(description="Retry due pending dead letters per stage with backoff; dead after the last try.")
def dlq_redrive_job() -> None:
    redrive_dead_letters()


# Off by default: an operator turns it on once the stages' failures are understood.
dlq_redrive_schedule = dg.ScheduleDefinition(
    name="dlq_redrive_schedule",
    job=dlq_redrive_job,
    cron_schedule="*/10 * * * *",
    execution_timezone="America/Los_Angeles",
    default_status=dg.DefaultScheduleStatus.STOPPED,
)
