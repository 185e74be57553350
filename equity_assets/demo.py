"""`equity demo`: the pipeline end to end on the embedded defaults, then the funnel.

It starts the sandbox (vendor simulators) and the gateway in this process, uploads a signed
synthetic PropStream export through the gateway, lets the upload sensor request the ingest run,
runs it, then verification (with scoring and assignment), the contactable set and the latest
weekday's campaign batch (pushed to the sandbox's Instantly). The sandbox answers the push with
Instantly webhooks (sent, replies, bounces, unsubscribes) posted to the gateway's inbox; the webhook
sensor turns them into `email_replies` runs, and a few interested leads open their mailed consent
link and agree. Then the voice leg (more replies and consent through the gateway, calls through the
sandbox's VAPI, their reports back through the gateway, outcomes; see `demo_voice`), a broker's
report through the portal and the month's invoices. It prints one line per stage (counts and
seconds) and the funnel; Dagster's own log stream goes to a file whose path it prints. Running it
again is safe: the gateway refuses the same file as a replay (409) and every stage is idempotent.
"""

from __future__ import annotations

import os
import secrets
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr
from pathlib import Path
from typing import TextIO

import dagster as dg

DEMO_ROWS = 2_000
DEMO_SEED = 20261126

#: The figures printed for each stage, in order (everything else is in the UI and the log file).
STAGE_FIGURES: dict[str, tuple[str, ...]] = {
    "staged_leads": ("file_rows", "staged_rows", "rejected_rows"),
    "deduped_leads": ("staged", "inserted", "updated", "merged_in_batch", "conflicts"),
    "verified_leads": ("leads_verified", "usable_email", "usable_phone", "suppressed", "dlq"),
    "scored_leads": ("rescored", "assigned", "queued", "unassigned_no_broker"),
    "contactable_leads": ("size", "added", "removed"),
    "daily_campaign_batch": ("selected", "brokers_served"),
    "instantly_campaign_leads": ("pushed", "chunks", "unpushed"),
    "pipeline_funnel": ("leads", "dlq_pending"),
}


@contextmanager
def dagster_log_to(path: Path) -> Iterator[TextIO]:
    """Send Dagster's log stream (it writes to stderr) and Python warnings to ``path``."""
    with path.open("a", encoding="utf-8") as log, redirect_stderr(log), warnings.catch_warnings():
        warnings.simplefilter("default")
        yield log


def stage_lines(result: dg.ExecuteInProcessResult, seconds: float) -> list[str]:
    """One line per asset the run materialized: its key figures and seconds (its own, else the run's)."""
    lines = []
    for event in result.get_asset_materialization_events():
        materialization = event.materialization
        name = materialization.asset_key.to_user_string()
        values = {k: v.value for k, v in materialization.metadata.items()}
        figures = ", ".join(f"{k} {values[k]}" for k in STAGE_FIGURES.get(name, ()) if k in values)
        own = values.get("duration_s", values.get("seconds"))  # the asset's own time, when it reports one
        lines.append(f"  {name:<26} {figures}  ({float(own) if own is not None else seconds:.1f} s)")
    return lines


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
        started = time.perf_counter()
        result = job.execute_in_process(instance=instance, partition_key=request.partition_key,
                                        tags={**request.tags, "dagster/run_key": request.run_key},
                                        raise_on_error=False)
        print(f"  ingest run for upload {request.partition_key}: {'ok' if result.success else 'FAILED'}")
        print("\n".join(stage_lines(result, time.perf_counter() - started)))


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
    started = time.perf_counter()
    result = defs.resolve_job_def(name).execute_in_process(instance=instance, raise_on_error=False, **kwargs)
    label = f"{name}" + (f" [{kwargs['partition_key']}]" if "partition_key" in kwargs else "")
    print(f"{label}: {'ok' if result.success else 'FAILED'}")
    print("\n".join(stage_lines(result, time.perf_counter() - started)))
    return result.success


def run_downstream(defs: dg.Definitions, instance: dg.DagsterInstance) -> bool:
    """verification (with scoring and assignment) → contactable set → the latest weekday's campaign batch → funnel."""
    from .campaign.partitions import campaign_days

    day = campaign_days.get_last_partition_key()
    steps = [
        run_job(defs, instance, "verified_leads_job"),
        run_job(defs, instance, "contactable_leads_job"),
        run_job(defs, instance, "daily_campaign_job", partition_key=day),
    ]
    return all(steps)


def register_instantly_webhook(sandbox_url: str, gateway_url: str) -> None:
    """Register the gateway's inbox with (sandbox) Instantly, with our shared-secret header."""
    import requests

    from .sandbox import SandboxConfig
    from .security.webhook_auth import INSTANTLY_SECRET_HEADER, INSTANTLY_SECRETS_ENV, env_secrets

    answer = requests.post(
        f"{sandbox_url}/api/v2/webhooks", timeout=10,
        headers={"Authorization": f"Bearer {SandboxConfig().instantly_api_key}"},
        json={"target_hook_url": f"{gateway_url}/v1/webhooks/instantly", "event_type": "all_events",
              "headers": {INSTANTLY_SECRET_HEADER: env_secrets(INSTANTLY_SECRETS_ENV)[0]}},
    )
    answer.raise_for_status()


def run_webhook_sensor(defs: dg.Definitions, instance: dg.DagsterInstance) -> int:
    """Tick the Instantly webhook sensor until it finds nothing new, running what it requests."""
    sensor = defs.resolve_sensor_def("instantly_webhook_sensor")
    job = defs.resolve_job_def("email_replies_job")
    state_key = "equity/demo/instantly_webhook_sensor_cursor"
    runs = failed = 0
    while True:
        cursor = instance.run_storage.get_cursor_values({state_key}).get(state_key)
        with dg.build_sensor_context(instance=instance, cursor=cursor, resources=defs.resources) as ctx:
            result = sensor(ctx)
        if result.cursor:
            instance.run_storage.set_cursor_values({state_key: result.cursor})
        requests = list(result.run_requests or [])
        if not requests:
            break
        for request in requests:
            outcome = job.execute_in_process(instance=instance, run_config=request.run_config,
                                             tags={**request.tags, "dagster/run_key": request.run_key},
                                             raise_on_error=False)
            runs += 1
            failed += not outcome.success
    print(f"webhook sensor: {runs} email_replies run(s){f', {failed} FAILED' if failed else ''}")
    return failed == 0


def submit_some_consents(postgres, sandbox_url: str, limit: int = 10) -> int:
    """Interested leads open the consent link they were mailed and agree, in a plain HTTP client."""
    import re

    import requests

    from .sandbox import SandboxControl

    with postgres.connection() as conn:
        wanted = {r[0]: (r[1], r[2]) for r in conn.execute(
            """SELECT l.email, b.instantly_campaign_id, l.phone FROM leads l JOIN brokers b ON b.id = l.assigned_broker_id
               WHERE l.last_reply_intent IN ('interested', 'question') AND NOT l.consent
                 AND l.campaign_status <> 'do_not_contact' AND l.phone IS NOT NULL
               ORDER BY l.last_reply_at, l.id LIMIT %s""", (limit,))}
    control = SandboxControl(sandbox_url)
    links = {lead["email"]: lead["custom_variables"]["consent_url"]
             for campaign in {c for c, _ in wanted.values()} for lead in control.campaign_leads(campaign)
             if lead["email"] in wanted}
    statuses: list[int] = []
    for email, url in links.items():
        with requests.Session() as browser:
            page = browser.get(url, timeout=10)
            fields = dict(re.findall(r'name="([a-z_]+)" value="([^"]*)"', page.text))
            # the lead confirms the number shown on the page
            answer = browser.post(url, timeout=10, data={**fields, "phone": wanted[email][1], "agree": "yes"})
            statuses.append(answer.status_code)
    granted = statuses.count(200)
    refused = ", ".join(f"HTTP {code}" for code in sorted(set(statuses) - {200}))
    print(f"consent links: {granted} of {len(links)} recorded" + (f" (refused: {refused})" if refused else ""))
    return granted


def print_funnel(postgres) -> None:
    from datetime import timedelta

    from .observe.funnel import measure_funnel

    with postgres.connection() as conn:
        funnel = measure_funnel(conn, window=timedelta(days=7))
        sent = conn.execute(
            "SELECT batch_date::text, status, count(*) FROM campaign_sends GROUP BY 1, 2 ORDER BY 1, 2").fetchall()
        leads = conn.execute("SELECT campaign_status::text, count(*) FROM leads GROUP BY 1 ORDER BY 1").fetchall()
        dlq = conn.execute("""SELECT stage, reason, count(*) FROM pipeline_dlq WHERE status = 'pending'
                              GROUP BY 1, 2 ORDER BY 1, 3 DESC""").fetchall()
        replies = conn.execute("SELECT intent, count(*) FROM email_replies GROUP BY 1 ORDER BY 2 DESC").fetchall()
        consent = conn.execute(
            "SELECT count(*) FILTER (WHERE consent), count(*) FILTER (WHERE campaign_status = 'do_not_contact') "
            "FROM leads").fetchone()
        events = conn.execute(
            "SELECT event_type, coalesce(sum(count), count(*)) FROM pipeline_events GROUP BY 1 ORDER BY min(id)"
        ).fetchall()
    print("leads by status: " + ", ".join(f"{status} {n}" for status, n in leads))
    print("campaign sends: " + (", ".join(f"{day} {status} {n}" for day, status, n in sent) or "none"))
    print("email replies by intent: " + (", ".join(f"{intent} {n}" for intent, n in replies) or "none"))
    print(f"leads with written consent: {consent[0]}, do-not-contact: {consent[1]}")
    # Every pending dead letter is shown with its reason: rows the export itself got wrong,
    # addresses a vendor refused. None is a pipeline fault; each waits for a human decision.
    print("dead-letter queue (pending, by reason):")
    for stage, reason, n in dlq or [("(empty)", "", 0)]:
        print(f"  {stage:<24} {n:>8}  {reason}")
    print("events: " + ", ".join(f"{event_type} {n}" for event_type, n in events))
    print("\nfunnel (the last 7 days):\n" + funnel.markdown())


def run_demo() -> int:
    from .db.cluster import equity_home
    from . import demo_portal
    from .gateway import GatewaySettings, running_gateway
    from .demo_voice import run_voice
    from .sandbox import SandboxConfig, running_sandbox

    # demo-only secrets when none are configured (links minted here die with this run's secret)
    os.environ.setdefault("EQUITY_UPLOAD_SECRETS", secrets.token_urlsafe(32))
    os.environ.setdefault("EQUITY_CONSENT_SECRET", secrets.token_urlsafe(32))
    os.environ.setdefault("EQUITY_INSTANTLY_WEBHOOK_SECRETS", secrets.token_urlsafe(32))
    os.environ.setdefault("EQUITY_SESSION_SECRET", secrets.token_urlsafe(32))
    sandbox_config = SandboxConfig()
    os.environ.setdefault("EQUITY_VAPI_WEBHOOK_SECRETS", sandbox_config.vapi_webhook_secret)
    log_path = equity_home() / "demo.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    print(f"Dagster's log: {log_path}")
    # every demo "person" and the sandbox's VAPI post from 127.0.0.1: lift the per-IP limit
    with tempfile.TemporaryDirectory() as tmp, running_sandbox(sandbox_config) as sandbox_url, \
            running_gateway(GatewaySettings(rate_limit_per_window=100_000)) as gateway_url, \
            dagster_log_to(log_path):
        os.environ["EQUITY_SANDBOX_URL"] = sandbox_url
        os.environ.setdefault("EQUITY_CONSENT_BASE_URL", gateway_url)
        os.environ["EQUITY_VAPI_SERVER_URL"] = f"{gateway_url}/v1/webhooks/vapi"
        from .definitions import defs  # resources read EQUITY_SANDBOX_URL at import
        from .sandbox import SandboxControl

        print(f"sandbox {sandbox_url}, gateway {gateway_url}")
        register_instantly_webhook(sandbox_url, gateway_url)
        upload_demo_file(gateway_url, Path(tmp))
        seed_demo_brokers(defs.resources["postgres"])
        postgres = defs.resources["postgres"]
        with dg.DagsterInstance.get() as instance:
            ingest(defs, instance)
            ok = run_downstream(defs, instance)
            deliveries = SandboxControl(sandbox_url).wait_for_webhooks()
            print(f"instantly webhooks: {deliveries['delivered']} delivered, {deliveries['failed']} failed "
                  f"{deliveries['by_type']}")
            ok = run_webhook_sensor(defs, instance) and ok
            submit_some_consents(postgres, sandbox_url)
            instantly_secret = os.environ["EQUITY_INSTANTLY_WEBHOOK_SECRETS"].split(",")[0]
            ok = run_voice(defs, instance, sandbox_url=sandbox_url, gateway_url=gateway_url,
                           instantly_secret=instantly_secret, run_job=run_job) and ok
            ok = run_job(defs, instance, "pipeline_funnel_job") and ok
            password = demo_portal.demo_login(postgres)
            ok = demo_portal.report_through_portal(gateway_url, password) and ok
            ok = demo_portal.run_billing(defs, instance, postgres) and ok
        try:
            print_funnel(postgres)
            demo_portal.print_login(password)
        finally:
            postgres.close()
    return 0 if ok else 1
