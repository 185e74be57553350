"""The operator's week, against a real deployment: gRPC code server + `dagster-daemon` +
webserver on the embedded database, driven only through the GraphQL API the UI uses.

An upload arrives through the gateway → the upload sensor (in the daemon) starts its ingest run →
verification is launched → the 05:30 and 06:00 ticks of Monday are evaluated and launched →
Tuesday to Thursday are missed → one backfill of `daily_campaign_batch` for those three days.
Every day is then sent exactly once, each broker's cap holds, and the funnel agrees.
"""

from __future__ import annotations

import secrets
import time
from collections import Counter
from datetime import datetime
from zoneinfo import ZoneInfo

import psycopg

from equity_assets.campaign.push import INVALID_REASON
from equity_assets.db.resources import PostgresResource
from equity_assets.gateway import GatewaySettings, running_gateway, upload_file
from equity_assets.ingest.synthetic import write_propstream_csv
from equity_assets.sandbox import SandboxControl, running_sandbox

from .stack import LOCATION, REPOSITORY, deployment, deployment_env, wait_until

PT = ZoneInfo("America/Los_Angeles")
MONDAY = "2026-11-16"
MISSED = ["2026-11-17", "2026-11-18", "2026-11-19"]
CAP = 4
BROKERS = {  # name → territory; the synthetic export spans these states and more
    "West": ["CA", "AZ", "NV", "WA", "OR", "UT", "CO"],
    "South": ["TX", "FL", "GA", "TN", "NC", "SC", "AL"],
    "East": ["NY", "NJ", "CT", "MA", "PA", "NH", "OH", "IL", "MI"],
}
REPO = {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY}
TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}

SCHEDULE_STATE = """query($s: ScheduleSelector!) { scheduleOrError(scheduleSelector: $s) {
    __typename ... on Schedule { scheduleState { id status } } } }"""
STOP_SCHEDULE = """mutation($id: String) { stopRunningSchedule(id: $id) { __typename
    ... on ScheduleStateResult { scheduleState { status } } ... on PythonError { message } } }"""
DRY_RUN = """mutation($s: ScheduleSelector!, $t: Float) { scheduleDryRun(selectorData: $s, timestamp: $t) {
    __typename ... on DryRunInstigationTick { evaluationResult { skipReason runRequests { runKey jobName
    tags { key value } } error { message } } } ... on PythonError { message } } }"""
LAUNCH_RUN = """mutation($p: ExecutionParams!) { launchRun(executionParams: $p) { __typename
    ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }"""
RUN_STATUS = """query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }"""
RUNS = """query($f: RunsFilter) { runsOrError(filter: $f) { ... on Runs { results { runId status tags { key value } } } } }"""
BACKFILL = """mutation($p: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $p) { __typename
    ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }"""
BACKFILL_STATUS = """query($id: String!) { partitionBackfillOrError(backfillId: $id) {
    ... on PartitionBackfill { status numPartitions } } }"""
LATEST_FUNNEL = """{ assetOrError(assetKey: {path: ["pipeline_funnel"]}) { ... on Asset {
    assetMaterializations(limit: 1) { runId metadataEntries { label ... on IntMetadataEntry { intValue } } } } } }"""


def launch(dep, job: str, tags: list[dict] | None = None) -> str:
    params = {"selector": {**REPO, "jobName": job}, "executionMetadata": {"tags": tags or []}}
    answer = dep.graphql(LAUNCH_RUN, p=params)["launchRun"]
    assert answer["__typename"] == "LaunchRunSuccess", answer
    return answer["run"]["runId"]


RUN_FAILURES = """
query Logs($id: ID!) {
  logsForRun(runId: $id) {
    ... on EventConnection { events { __typename
      ... on ExecutionStepFailureEvent { stepKey error { message } }
      ... on RunFailureEvent { message } } }
  }
}"""


def finished(dep, run_id: str, timeout_s: float = 240) -> str:
    status = wait_until(lambda: (s := dep.graphql(RUN_STATUS, id=run_id)["runOrError"]["status"]) in TERMINAL and s,
                        timeout_s=timeout_s, what=f"run {run_id}", every_s=1)
    if status == "FAILURE":  # say why, so the assertion that follows names the fault
        events = dep.graphql(RUN_FAILURES, id=run_id)["logsForRun"].get("events", [])
        for event in events:
            if event["__typename"] in ("ExecutionStepFailureEvent", "RunFailureEvent"):
                print(f"run {run_id}: {event.get('stepKey', '')} {(event.get('error') or {}).get('message') or event.get('message')}")
    return status


def tick(dep, schedule: str, job: str, local: datetime) -> list[str]:
    """Evaluate `schedule` at `local` (the UI's "Test schedule") and launch what it requests."""
    answer = dep.graphql(DRY_RUN, s={**REPO, "scheduleName": schedule}, t=local.timestamp())["scheduleDryRun"]
    evaluation = answer["evaluationResult"]
    assert evaluation["error"] is None and evaluation["runRequests"], answer
    return [launch(dep, r["jobName"] or job, r["tags"] + ([{"key": "dagster/run_key", "value": r["runKey"]}] if r["runKey"] else []))
            for r in evaluation["runRequests"]]


def stop_schedule(dep, name: str, tries: int = 10) -> None:
    """Real time must not tick during the test: the ticks it needs are evaluated explicitly.

    The daemon may be writing the schedule's stored state at the same moment (a schedule that is on
    by default has none until then), and the stop then answers an error: ask again."""
    answer: dict = {}
    for _ in range(tries):
        state = dep.graphql(SCHEDULE_STATE, s={**REPO, "scheduleName": name})["scheduleOrError"]["scheduleState"]
        if state["status"] == "STOPPED":
            return
        answer = dep.graphql(STOP_SCHEDULE, id=state["id"])["stopRunningSchedule"]
        if (answer.get("scheduleState") or {}).get("status") == "STOPPED":
            return
        time.sleep(0.5)
    raise AssertionError(f"{name} did not stop: {answer}")


def test_upload_ticks_outage_and_one_backfill_send_every_day_once(tmp_path, clean_db, dagster_storage, monkeypatch):
    monkeypatch.setenv("EQUITY_UPLOAD_SECRETS", secrets.token_urlsafe(32))
    with psycopg.connect(clean_db.admin_dsn, autocommit=True) as db:
        for name, states in BROKERS.items():
            db.execute("INSERT INTO brokers (name, territory_states, instantly_campaign_id, daily_cap) VALUES (%s, %s, %s, %s)",
                       (name, states, f"op-{name}", CAP))
    gateway = GatewaySettings(upload_dir=tmp_path / "uploads", postgres=PostgresResource(dsn=clean_db.app_dsn))
    with running_sandbox() as sandbox_url, running_gateway(gateway) as gateway_url:
        env = deployment_env(tmp_path, dagster_storage, database_url=clean_db.app_dsn, sandbox_url=sandbox_url,
                             consent_base_url=gateway_url)
        with deployment(tmp_path, env) as dep:
            for schedule in ("contactable_leads_schedule", "daily_campaign_schedule"):
                stop_schedule(dep, schedule)

            # An upload arrives: the upload sensor, running in the daemon, starts its ingest run.
            export = tmp_path / "export.csv"
            write_propstream_csv(export, 400, seed=7)
            upload_file(export, url=gateway_url, source="propstream")
            ingest = wait_until(lambda: dep.graphql(RUNS, f={"pipelineName": "ingest_upload"})["runsOrError"]["results"],
                                timeout_s=180, what="the upload sensor's ingest run", every_s=2)
            assert finished(dep, ingest[0]["runId"]) == "SUCCESS"
            assert finished(dep, launch(dep, "verified_leads_job")) == "SUCCESS"

            # Monday: the 05:30 refresh and the 06:00 batch, as their ticks request them.
            for schedule, job, at in (
                ("contactable_leads_schedule", "contactable_leads_job", datetime(2026, 11, 16, 5, 30, tzinfo=PT)),
                ("daily_campaign_schedule", "daily_campaign_job", datetime(2026, 11, 16, 6, 0, tzinfo=PT)),
            ):
                assert [finished(dep, run) for run in tick(dep, schedule, job, at)] == ["SUCCESS"]

            # Tuesday to Thursday were missed. The batch alone cannot be backfilled without its push...
            alone = dep.graphql(BACKFILL, p={"partitionNames": MISSED, "assetSelection": [{"path": ["daily_campaign_batch"]}]})
            assert alone["launchPartitionBackfill"]["__typename"] == "PythonError"
            assert "instantly_campaign_leads" in alone["launchPartitionBackfill"]["message"]
            # ...so the backfill the UI launches (the batch with its required push) sends the days.
            launched = dep.graphql(BACKFILL, p={"partitionNames": MISSED, "assetSelection": [
                {"path": ["daily_campaign_batch"]}, {"path": ["instantly_campaign_leads"]}]})["launchPartitionBackfill"]
            assert launched["__typename"] == "LaunchBackfillSuccess", launched
            status = wait_until(
                lambda: (s := dep.graphql(BACKFILL_STATUS, id=launched["backfillId"])["partitionBackfillOrError"]["status"])
                not in ("REQUESTED",) and s, timeout_s=300, what="the backfill", every_s=2)
            assert status == "COMPLETED_SUCCESS"
            backfill_runs = dep.graphql(RUNS, f={"tags": [{"key": "dagster/backfill", "value": launched["backfillId"]}]})
            assert len(backfill_runs["runsOrError"]["results"]) == 1  # one run for the range, oldest day first

            assert finished(dep, launch(dep, "pipeline_funnel_job")) == "SUCCESS"
            funnel = dep.graphql(LATEST_FUNNEL)["assetOrError"]["assetMaterializations"][0]["metadataEntries"]
            funnel = {e["label"]: e.get("intValue") for e in funnel}

        received = {name: SandboxControl(sandbox_url).campaign_leads(f"op-{name}") for name in BROKERS}

    with psycopg.connect(clean_db.admin_dsn) as db:
        sends = db.execute("""SELECT s.batch_date::text, b.name, s.status, l.email, s.error FROM campaign_sends s
                              JOIN brokers b ON b.id = s.broker_id JOIN leads l ON l.id = s.lead_id""").fetchall()
        leads = db.execute("SELECT count(*) FROM leads").fetchone()[0]
        dead_letters = db.execute("SELECT reason FROM pipeline_dlq WHERE stage = 'instantly_campaign_leads'").fetchall()
    per_day_broker = Counter((day, broker) for day, broker, *_ in sends)
    assert {day for day, _ in per_day_broker} == {MONDAY, *MISSED}  # every missed day was sent
    assert max(per_day_broker.values()) <= CAP  # caps held, day by day
    assert all(per_day_broker[(day, "West")] == CAP for day in (MONDAY, *MISSED)), per_day_broker
    outcomes = Counter((status, error) for _, _, status, _, error in sends)
    # nothing left queued; the addresses Instantly refused (the export has some) are dead letters
    assert set(outcomes) <= {("pushed", None), ("failed", INVALID_REASON)}, outcomes
    assert dead_letters == [(INVALID_REASON,)] * outcomes[("failed", INVALID_REASON)]
    pushed = [(broker, email) for _, broker, status, email, _ in sends if status == "pushed"]
    # exactly once: every pushed lead reached its broker's campaign once, and nothing else did
    for name, campaign in received.items():
        assert sorted(lead["email"] for lead in campaign) == sorted(e for b, e in pushed if b == name)
        assert {lead["upload_count"] for lead in campaign} == {1}
    assert funnel["dedupe_success_leads"] == leads
    assert (funnel["campaign_queued_leads"], funnel["email_sent_leads"]) == (len(sends), len(pushed))
    assert funnel["sends_queued"] == 0
