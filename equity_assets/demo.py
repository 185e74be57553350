"""`equity demo`: the pipeline end to end on the embedded defaults, then the funnel.

It starts the sandbox (vendor simulators) and the gateway in this process, uploads a signed
synthetic PropStream export through the gateway, lets the upload sensor request the ingest run,
runs it, then the downstream stages, and prints counts per stage. Running it again is safe: the
gateway refuses the same file as a replay (409) and every stage is idempotent.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path

import dagster as dg

DEMO_ROWS = 2_000
DEMO_SEED = 20261126


def upload_demo_file(gateway_url: str, workdir: Path) -> str:
    """Sign and upload the demo export; on a replay, reuse the upload that is already in."""
    from .gateway import UploadError, upload_file
    from .ingest.synthetic import write_propstream_csv

    path = workdir / "demo-propstream.csv"
    write_propstream_csv(path, DEMO_ROWS, seed=DEMO_SEED)
    try:
        answer = upload_file(path, url=gateway_url, source="propstream")
        print(f"upload: {answer['status']} {answer['upload_id']} ({answer['bytes']} bytes)")
    except UploadError as exc:
        if exc.status != 409:
            raise
        answer = exc.body
        print(f"upload: 409 replay — this file is already in as {answer['upload_id']}")
    return answer["upload_id"]


def run_upload_sensor(defs: dg.Definitions, instance: dg.DagsterInstance) -> list[dg.RunRequest]:
    """One tick of the upload sensor, with its cursor kept in the instance like the daemon does."""
    sensor = defs.resolve_sensor_def("upload_sensor")
    state_key = "equity/demo/upload_sensor_cursor"
    cursor = instance.run_storage.get_cursor_values({state_key}).get(state_key)
    with dg.build_sensor_context(instance=instance, cursor=cursor, resources=defs.resources) as ctx:
        result = sensor(ctx)
    for request in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    if result.cursor:
        instance.run_storage.set_cursor_values({state_key: result.cursor})
    return list(result.run_requests or [])


def ingest(defs: dg.Definitions, instance: dg.DagsterInstance) -> None:
    job = defs.resolve_job_def("ingest_upload")
    requests = run_upload_sensor(defs, instance)
    print(f"upload sensor: {len(requests)} new run(s)")
    for request in requests:
        result = job.execute_in_process(instance=instance, partition_key=request.partition_key,
                                        tags={**request.tags, "dagster/run_key": request.run_key},
                                        raise_on_error=False)
        print(f"  ingest run for upload {request.partition_key}: {'ok' if result.success else 'FAILED'}")


def print_funnel(postgres) -> None:
    with postgres.connection() as conn:
        rows = conn.execute(
            "SELECT event_type, coalesce(sum(count), count(*)) FROM pipeline_events GROUP BY 1 ORDER BY min(id)"
        ).fetchall()
        leads = conn.execute("SELECT campaign_status::text, count(*) FROM leads GROUP BY 1 ORDER BY 1").fetchall()
        dlq = conn.execute("SELECT stage, count(*) FROM pipeline_dlq WHERE status = 'pending' GROUP BY 1").fetchall()
    print("\nfunnel (pipeline_events):")
    for event_type, n in rows:
        print(f"  {event_type:<24} {n:>8}")
    print("leads by status:")
    for status, n in leads:
        print(f"  {status:<24} {n:>8}")
    print("dead-letter queue (pending):")
    for stage, n in dlq or [("(empty)", 0)]:
        print(f"  {stage:<24} {n:>8}")


def run_demo() -> int:
    from .gateway import GatewaySettings, running_gateway
    from .sandbox import running_sandbox

    os.environ.setdefault("EQUITY_UPLOAD_SECRETS", secrets.token_urlsafe(32))
    with tempfile.TemporaryDirectory() as tmp, running_sandbox() as sandbox_url, \
            running_gateway(GatewaySettings()) as gateway_url:
        os.environ["EQUITY_SANDBOX_URL"] = sandbox_url
        from .definitions import defs  # resources read EQUITY_SANDBOX_URL at import

        print(f"sandbox {sandbox_url}, gateway {gateway_url}")
        upload_demo_file(gateway_url, Path(tmp))
        with dg.DagsterInstance.get() as instance:
            ingest(defs, instance)
            rest = defs.resolve_implicit_global_asset_job_def().get_subset(
                asset_selection={dg.AssetKey("pipeline_funnel")})
            ok = rest.execute_in_process(instance=instance).success
        postgres = defs.resources["postgres"]
        try:
            print_funnel(postgres)
        finally:
            postgres.close()
    return 0 if ok else 1
