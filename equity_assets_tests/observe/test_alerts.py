"""Alerts: each condition fires once, is not repeated (even by a restarted daemon), and recovers once.

Messages go over real HTTP to a capturing receiver on loopback, which only records what it is sent.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import psycopg
import pytest

from equity_assets.definitions import defs
from equity_assets.observe.alerts import AlertSink, AlertThresholds
from equity_assets.observe.sensors import (
    alert_conditions_sensor,
    run_alert_key,
    run_failure_alert_sensor,
    run_recovery_alert_sensor,
)
from equity_assets.resources import alert_sink


class Receiver:
    """A webhook endpoint that keeps every JSON body it is posted."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        received = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def about(self, key: str) -> list[str]:
        """The states (FIRING / RESOLVED / STILL FIRING) sent for ``key``, in order."""
        return [b["text"].split("[", 1)[1].split("]", 1)[0] for b in self.bodies if f"] {key}:" in b["text"]]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()
    r.server.server_close()


def evaluate(postgres, sink: AlertSink) -> str:
    with dg.build_sensor_context(resources={"postgres": postgres, "alerts": sink}) as context:
        return alert_conditions_sensor(context).skip_message


def sql(clean_db, statement: str, params=None) -> None:
    with psycopg.connect(clean_db.admin_dsn, autocommit=True) as conn:
        conn.execute(statement, params)


def rejections(clean_db, reason: str, status: int, n: int) -> None:
    """Rejection events as the gateway records them (reason, client IP, HTTP status)."""
    sql(clean_db, """INSERT INTO pipeline_events (event_type, stage, payload)
                     SELECT 'upload_rejected', 'gateway',
                            jsonb_build_object('reason', %s::text, 'client_ip', '10.0.0.1', 'status', %s::int)
                     FROM generate_series(1, %s)""", (reason, status, n))


def failed_send(clean_db) -> None:
    sql(clean_db, """WITH b AS (INSERT INTO brokers (name) VALUES ('B') RETURNING id),
                          l AS (INSERT INTO leads (email) VALUES ('f@example.com') RETURNING id)
                     INSERT INTO campaign_sends (batch_date, lead_id, broker_id, status)
                     SELECT current_date, l.id, b.id, 'failed' FROM b, l""")


def maintain(clean_db) -> None:
    sql(clean_db, "SELECT pipeline_events_maintain()")


# key -> (make it fire, make it clear, thresholds for the clearing evaluation)
CONDITIONS: dict[str, tuple[Callable, Callable, dict]] = {
    "signature_failure_rate": (
        lambda db: (rejections(db, "bad_signature", 401, 20),
                    sql(db, "INSERT INTO pipeline_events (event_type) SELECT 'upload_received' FROM generate_series(1, 10)")),
        # the failures are history; enough good traffic brings the rate back under 5 %
        lambda db: sql(db, "INSERT INTO pipeline_events (event_type) SELECT 'upload_received' FROM generate_series(1, 400)"),
        {}),
    "dlq_depth": (
        lambda db: sql(db, "INSERT INTO pipeline_dlq (stage, reason) SELECT 'staged_leads', 'bad row' FROM generate_series(1, 101)"),
        lambda db: sql(db, "UPDATE pipeline_dlq SET status = 'resolved' WHERE id % 2 = 0"),
        {}),
    "campaign_sends_failed": (
        failed_send,
        lambda db: sql(db, "UPDATE campaign_sends SET status = 'pushed'"),
        {}),
    "duplicate_upload_spike": (
        lambda db: rejections(db, "replay", 409, 11),
        lambda db: None,
        {"duplicate_uploads_per_hour": 50}),  # an operator raised the limit: the spike is no longer one
    "contactable_refresh_stale": (
        lambda db: sql(db, "UPDATE contactable_refresh_state SET refreshed_at = now() - interval '30 hours'"),
        lambda db: sql(db, "UPDATE contactable_refresh_state SET refreshed_at = now()"),
        {}),
    "events_in_default_partition": (
        lambda db: sql(db, "INSERT INTO pipeline_events (event_type, created_at) VALUES ('upload_received', now() + interval '40 months')"),
        maintain,
        {}),
}


@pytest.mark.parametrize("key", sorted(CONDITIONS))
def test_each_condition_fires_once_and_recovers_once(postgres, clean_db, receiver, key):
    make_firing, make_clear, clearing_thresholds = CONDITIONS[key]
    sink = AlertSink(webhook_url=receiver.url)
    evaluate(postgres, sink)
    assert receiver.about(key) == []  # a quiet database: nothing

    make_firing(clean_db)
    assert key in evaluate(postgres, sink)
    evaluate(postgres, sink)
    # a restarted daemon has a new resource instance: the table, not memory, knows it was sent
    evaluate(postgres, AlertSink(webhook_url=receiver.url))
    assert receiver.about(key) == ["FIRING"]

    make_clear(clean_db)
    cleared = AlertSink(webhook_url=receiver.url, thresholds=AlertThresholds(**clearing_thresholds))
    evaluate(postgres, cleared)
    evaluate(postgres, cleared)
    assert receiver.about(key) == ["FIRING", "RESOLVED"]
    with psycopg.connect(clean_db.admin_dsn) as conn:
        assert conn.execute("SELECT firing, cleared_at IS NOT NULL FROM alert_state WHERE alert_key = %s",
                            (key,)).fetchone() == (False, True)


def test_the_payload_is_slack_compatible(postgres, clean_db, receiver):
    sql(clean_db, "INSERT INTO pipeline_dlq (stage, reason) SELECT 'staged_leads', 'bad row' FROM generate_series(1, 150)")
    evaluate(postgres, AlertSink(webhook_url=receiver.url))
    (body,) = [b for b in receiver.bodies if "dlq_depth" in b["text"]]
    assert "150 dead letters pending (limit 100)" in body["text"]
    assert body["blocks"][0]["type"] == "section" and body["blocks"][0]["text"]["type"] == "mrkdwn"
    assert "*dlq_depth*" in body["blocks"][0]["text"]["text"]


def test_a_still_firing_alert_repeats_after_its_window_and_thresholds_are_configurable(postgres, clean_db, receiver):
    sql(clean_db, "INSERT INTO pipeline_dlq (stage, reason) SELECT 'staged_leads', 'bad row' FROM generate_series(1, 20)")
    evaluate(postgres, AlertSink(webhook_url=receiver.url))
    assert receiver.about("dlq_depth") == []  # 20 is under the default limit
    lower = AlertSink(webhook_url=receiver.url, repeat_after_minutes=0, thresholds=AlertThresholds(dlq_depth=10))
    evaluate(postgres, lower)
    evaluate(postgres, lower)
    assert receiver.about("dlq_depth") == ["FIRING", "STILL FIRING"]


def test_thresholds_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("EQUITY_ALERT_DLQ_DEPTH", "500")
    monkeypatch.setenv("EQUITY_ALERT_SIGNATURE_FAILURE_PCT", "2.5")
    t = AlertThresholds.from_env()
    assert (t.dlq_depth, t.signature_failure_pct, t.duplicate_uploads_per_hour) == (500, 2.5, 10)


def test_an_undelivered_alert_is_retried_on_the_next_evaluation(postgres, clean_db, receiver):
    closed = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    dead_url = f"http://127.0.0.1:{closed.server_address[1]}/"
    closed.server_close()  # nothing listens there any more: connection refused
    sql(clean_db, "INSERT INTO pipeline_dlq (stage, reason) SELECT 'staged_leads', 'bad row' FROM generate_series(1, 101)")
    assert "not delivered: dlq_depth" in evaluate(postgres, AlertSink(webhook_url=dead_url, timeout_seconds=2))
    with psycopg.connect(clean_db.admin_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM alert_state WHERE alert_key = 'dlq_depth'").fetchone()[0] == 0
    evaluate(postgres, AlertSink(webhook_url=receiver.url))
    assert receiver.about("dlq_depth") == ["FIRING"]


def test_without_a_webhook_alerts_are_logged_only(postgres, clean_db, caplog):
    sql(clean_db, "INSERT INTO pipeline_dlq (stage, reason) SELECT 'staged_leads', 'bad row' FROM generate_series(1, 101)")
    with caplog.at_level("WARNING", logger="equity_assets.alerts"):
        evaluate(postgres, AlertSink())
    assert any("[FIRING] dlq_depth" in r.getMessage() for r in caplog.records)


@dg.op
def explode() -> None:
    raise RuntimeError("the vendor said no")


@dg.op
def fine() -> None:
    pass


@dg.job(name="flaky_job")
def failing_job() -> None:
    explode()


@dg.job(name="flaky_job")
def passing_job() -> None:
    fine()


def run_event(job: dg.JobDefinition, instance: dg.DagsterInstance, event_type: dg.DagsterEventType):
    result = job.execute_in_process(instance=instance, raise_on_error=False)
    records = instance.get_records_for_run(result.run_id, of_type=event_type).records
    return records[0].event_log_entry.dagster_event, instance.get_run_by_id(result.run_id)


def test_a_failed_run_alerts_once_per_job_and_a_later_success_resolves_it(postgres, clean_db, receiver):
    sink = AlertSink(webhook_url=receiver.url)
    resources = {"postgres": postgres, "alerts": sink}
    with dg.instance_for_test() as instance:
        for _ in range(2):  # the second failure of the same job is not a second alert
            event, run = run_event(failing_job, instance, dg.DagsterEventType.RUN_FAILURE)
            with dg.build_run_status_sensor_context(
                    sensor_name="run_failure_alert_sensor", dagster_event=event, dagster_instance=instance,
                    dagster_run=run, resources=resources) as context:
                run_failure_alert_sensor(context.for_run_failure())
        event, run = run_event(passing_job, instance, dg.DagsterEventType.RUN_SUCCESS)
        with dg.build_run_status_sensor_context(
                sensor_name="run_recovery_alert_sensor", dagster_event=event, dagster_instance=instance,
                dagster_run=run, resources=resources) as context:
            run_recovery_alert_sensor(context)
    assert receiver.about("run_failed:flaky_job") == ["FIRING", "RESOLVED"]
    assert "of flaky_job failed" in receiver.bodies[0]["text"]


def test_named_assets_have_their_own_run_alert():
    def run(*assets: str) -> dg.DagsterRun:
        return dg.DagsterRun(job_name="__ASSET_JOB", asset_selection=frozenset(dg.AssetKey(a) for a in assets))
    assert run_alert_key(run("contactable_leads")) == "contactable_refresh_failed"
    assert run_alert_key(run("scored_leads", "daily_campaign_batch")) == "campaign_batch_failed"
    assert run_alert_key(run("pipeline_funnel")) == "run_failed:__ASSET_JOB"


def test_alert_sensors_are_on_by_default():
    for name in ("alert_conditions_sensor", "run_failure_alert_sensor", "run_recovery_alert_sensor"):
        assert defs.resolve_sensor_def(name).default_status == dg.DefaultSensorStatus.RUNNING



def test_the_webhook_url_is_configured_by_name_and_never_shown(monkeypatch, postgres, clean_db):
    monkeypatch.setenv("EQUITY_ALERT_WEBHOOK_URL", "http://127.0.0.1:9/services/secret-token")
    assert isinstance(alert_sink().webhook_url, dg.EnvVar)  # the UI shows the variable's name
    sql(clean_db, "INSERT INTO pipeline_dlq (stage, reason) SELECT 'staged_leads', 'bad row' FROM generate_series(1, 101)")
    message = evaluate(postgres, alert_sink())  # nothing listens on port 9: the delivery fails
    assert "not delivered: dlq_depth" in message and "secret-token" not in message
