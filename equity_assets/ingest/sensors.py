"""Upload sensor: each new `uploads` row becomes a partition and one run."""

import json
from datetime import datetime, timedelta

import dagster as dg

from ..db.resources import PostgresResource
from .partitions import uploads_partitions

ingest_upload_job = dg.define_asset_job(
    "ingest_upload", selection=dg.AssetSelection.groups("ingest"), description="staged_leads → deduped_leads for one upload"
)

# Uploads committed out of order can carry an older received_at than the cursor; look back
# this far on every tick. run_key = upload id makes the overlap harmless.
LOOKBACK = timedelta(minutes=10)


@dg.sensor(job=ingest_upload_job, minimum_interval_seconds=15, default_status=dg.DefaultSensorStatus.RUNNING)
def upload_sensor(context: dg.SensorEvaluationContext, postgres: PostgresResource) -> dg.SensorResult:
    """New uploads (status `received`) → a dynamic partition each + a run keyed by the upload id."""
    cursor = json.loads(context.cursor) if context.cursor else {}
    since = datetime.fromisoformat(cursor["received_at"]) - LOOKBACK if "received_at" in cursor else None
    with postgres.connection() as conn:
        rows = conn.execute(
            """SELECT id::text, received_at FROM uploads
               WHERE status = 'received' AND (%(since)s::timestamptz IS NULL OR received_at > %(since)s)
               ORDER BY received_at, id LIMIT 500""",
            {"since": since},
        ).fetchall()
    if not rows:
        return dg.SensorResult(skip_reason="no new uploads", cursor=context.cursor)
    ids = [r[0] for r in rows]
    known = set(context.instance.get_dynamic_partitions(uploads_partitions.name))
    new = [i for i in ids if i not in known]
    newest = max(r[1] for r in rows)
    if "received_at" in cursor:
        newest = max(newest, datetime.fromisoformat(cursor["received_at"]))
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=i, partition_key=i, tags={"equity/upload_id": i}) for i in ids],
        dynamic_partitions_requests=[uploads_partitions.build_add_request(new)] if new else [],
        cursor=json.dumps({"received_at": newest.isoformat()}),
    )
