"""`equity demo`: the pipeline end to end on the embedded defaults, then the funnel.

It starts the sandbox (vendor simulators) and the gateway in this process, uploads a signed
synthetic PropStream export through the gateway, lets the upload sensor request the ingest run,
runs it, then verification, the contactable set and the latest weekday's campaign batch (pushed to
the sandbox's Instantly), and prints counts per stage. Running it again is safe: the
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


# Demo brokers and the states they cover (the synthetic export spans these and more).
DEMO_BROKERS = {
    "Demo Broker West": ["CA", "AZ", "NV", "WA", "OR", "UT", "CO"],
    "Demo Broker South": ["TX", "FL", "GA", "TN", "NC", "SC", "AL"],
    "Demo Broker East": ["NY", "NJ", "CT", "MA", "PA", "NH", "OH", "IL", "MI"],
}


def seed_demo_brokers(postgres) -> None:
    """The brokers the demo assigns leads to (added once; a re-run finds them)."""
    with postgres.connection() as conn:
        for name, states in DEMO_BROKERS.items():
            conn.execute(
                """INSERT INTO brokers (name, territory_states, instantly_campaign_id)
                   SELECT %s, %s, 'demo-campaign' WHERE NOT EXISTS (SELECT 1 FROM brokers WHERE name = %s)""",
                (name, states, name),
            )


def run_job(defs: dg.Definitions, instance: dg.DagsterInstance, name: str, **kwargs) -> bool:
    result = defs.resolve_job_def(name).execute_in_process(instance=instance, raise_on_error=False, **kwargs)
    label = f"{name}" + (f" [{kwargs['partition_key']}]" if "partition_key" in kwargs else "")
    print(f"{label}: {'ok' if result.success else 'FAILED'}")
    return result.success


def run_downstream(defs: dg.Definitions, instance: dg.DagsterInstance) -> bool:
    """verification → contactable set → the latest weekday's campaign batch → funnel."""
    from .campaign.partitions import campaign_days

    day = campaign_days.get_last_partition_key()
    steps = [
        run_job(defs, instance, "verified_leads_job"),
        run_job(defs, instance, "contactable_leads_job"),
        run_job(defs, instance, "daily_campaign_job", partition_key=day),
        run_job(defs, instance, "pipeline_funnel_job"),
    ]
    return all(steps)


def print_funnel(postgres) -> None:
    from .observe.assets import FUNNEL_SQL, FUNNEL_STAGES

    with postgres.connection() as conn:
        funnel = dict(zip(FUNNEL_STAGES, conn.execute(FUNNEL_SQL).fetchone(), strict=True))
        sent = conn.execute(
            "SELECT batch_date::text, status, count(*) FROM campaign_sends GROUP BY 1, 2 ORDER BY 1, 2").fetchall()
        leads = conn.execute("SELECT campaign_status::text, count(*) FROM leads GROUP BY 1 ORDER BY 1").fetchall()
        dlq = conn.execute("""SELECT stage, reason, count(*) FROM pipeline_dlq WHERE status = 'pending'
                              GROUP BY 1, 2 ORDER BY 1, 3 DESC""").fetchall()
    print("\nfunnel (leads per stage):")
    for stage, n in funnel.items():
        print(f"  {stage:<24} {n:>8}")
    print("leads by status:")
    for status, n in leads:
        print(f"  {status:<24} {n:>8}")
    print("campaign sends (date, status):")
    for day, status, n in sent or [("(none)", "", 0)]:
        print(f"  {day} {status:<13} {n:>8}")
    # Every pending dead letter is shown with its reason: rows the export itself got wrong,
    # addresses a vendor refused. None is a pipeline fault; each waits for a human decision.
    print("dead-letter queue (pending, by reason):")
    for stage, reason, n in dlq or [("(empty)", "", 0)]:
        print(f"  {stage:<24} {n:>8}  {reason}")


def run_demo() -> int:
    from .gateway import GatewaySettings, running_gateway
    from .sandbox import running_sandbox

    # demo-only secrets when none are configured (links minted here die with this run's secret)
    os.environ.setdefault("EQUITY_UPLOAD_SECRETS", secrets.token_urlsafe(32))
    os.environ.setdefault("EQUITY_CONSENT_SECRET", secrets.token_urlsafe(32))
    with tempfile.TemporaryDirectory() as tmp, running_sandbox() as sandbox_url, \
            running_gateway(GatewaySettings()) as gateway_url:
        os.environ["EQUITY_SANDBOX_URL"] = sandbox_url
        from .definitions import defs  # resources read EQUITY_SANDBOX_URL at import

        print(f"sandbox {sandbox_url}, gateway {gateway_url}")
        upload_demo_file(gateway_url, Path(tmp))
        seed_demo_brokers(defs.resources["postgres"])
        with dg.DagsterInstance.get() as instance:
            ingest(defs, instance)
            ok = run_downstream(defs, instance)
        postgres = defs.resources["postgres"]
        try:
            print_funnel(postgres)
        finally:
            postgres.close()
    return 0 if ok else 1
