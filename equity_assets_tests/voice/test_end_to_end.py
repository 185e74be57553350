"""Calls through the sandbox's VAPI, its signed messages through the real gateway into the inbox, the
webhook sensor's runs of call_outcomes — with duplicated and out-of-order reports."""

from __future__ import annotations

import time
from datetime import timedelta
from collections import Counter

import dagster as dg
import pytest
import requests

from equity_assets.gateway import GatewaySettings, running_gateway
from equity_assets.sandbox import SandboxConfig
from equity_assets.security.webhook_auth import VAPI_AUTH_ENV, VAPI_SECRETS_ENV
from equity_assets.vendors.vapi import VapiResource
from equity_assets.voice import assets as voice_assets
from equity_assets.voice.definitions import defs as voice_defs

from .conftest import add_broker, add_consenting_lead
from .test_voice_calls import AT

HOOK_SECRET = "vapi-hook-secret-for-tests"


def wait_for_messages(sandbox_url: str, reports: int, calls: int, timeout_s: float = 30.0) -> list[dict]:
    """The messages the sandbox sent, once every report and every call's first status update is out."""
    deadline = time.monotonic() + timeout_s
    while True:
        sent = requests.get(f"{sandbox_url}/_sandbox/vapi/messages", timeout=5).json()
        kinds = Counter(m["type"] for m in sent)
        if (kinds["end-of-call-report"] >= reports and kinds["status-update"] >= calls) \
                or time.monotonic() > deadline:
            return sent
        time.sleep(0.1)


def wired_resources(postgres, sandbox_url: str, gateway_url: str) -> dict:
    """The pipeline's resources with VAPI told to post its messages to this gateway."""
    return {"postgres": postgres, "vapi": VapiResource(api_key=SandboxConfig().vapi_api_key, base_url=sandbox_url,
                                                       server_url=f"{gateway_url}/v1/webhooks/vapi")}


@pytest.mark.parametrize("knobs", [{"vapi_duplicate_rate": 1.0}, {"vapi_out_of_order_rate": 1.0}],
                         ids=["duplicated", "out_of_order"])
def test_reports_flow_from_vapi_to_outcomes(db, postgres, start_sandbox, tmp_path, monkeypatch, knobs):
    monkeypatch.setenv(VAPI_SECRETS_ENV, HOOK_SECRET)
    monkeypatch.setenv(VAPI_AUTH_ENV, "hmac")
    monkeypatch.setattr(voice_assets, "utc_now", lambda: AT)
    db.execute("TRUNCATE gateway_rate_limits")
    sandbox_url = start_sandbox(SandboxConfig(vapi_webhook_secret=HOOK_SECRET, vapi_webhook_auth="hmac",
                                              vapi_report_delay_s=0.05, **knobs))
    broker = add_broker(db)
    leads = [add_consenting_lead(db, broker, phone=f"+1212555020{i}") for i in range(6)]
    with running_gateway(GatewaySettings(postgres=postgres, upload_dir=tmp_path)) as gateway_url:
        resources = wired_resources(postgres, sandbox_url, gateway_url)
        vapi = resources["vapi"]
        assert dg.materialize([voice_assets.voice_calls], resources=resources).success
        calls = requests.get(f"{sandbox_url}/call", headers={"Authorization": f"Bearer {vapi.api_key}"},
                             timeout=5).json()
        assert len(calls) == len(leads)
        reports = len(leads) * (2 if knobs.get("vapi_duplicate_rate") else 1)
        sent = wait_for_messages(sandbox_url, reports, len(leads))
    assert sent and all(m["status"] == 200 for m in sent), sent

    wired = dg.Definitions.merge(voice_defs, dg.Definitions(resources=resources))
    sensor = wired.resolve_sensor_def("vapi_webhook_sensor")
    with dg.DagsterInstance.ephemeral() as instance:
        with dg.build_sensor_context(instance=instance, resources=resources) as ctx:
            result = sensor(ctx)
        assert result.run_requests and result.cursor
        for request in result.run_requests:
            run = wired.resolve_job_def("call_outcomes_job").execute_in_process(
                instance=instance, run_config=request.run_config, tags=request.tags)
            assert run.success
        with dg.build_sensor_context(instance=instance, cursor=result.cursor, resources=resources) as ctx:
            assert not sensor(ctx).run_requests  # nothing new after the cursor

    rows = db.execute("SELECT vapi_call_id, status, outcome, ended_reason FROM calls").fetchall()
    by_id = {c["id"]: c for c in requests.get(f"{sandbox_url}/call", headers={"Authorization": f"Bearer {vapi.api_key}"},
                                              timeout=5).json()}
    assert len(rows) == len(leads)
    for vapi_id, status, outcome, ended_reason in rows:
        assert status == "ended" and outcome is not None
        assert ended_reason == by_id[vapi_id]["endedReason"]
    inbox = Counter(r[0] for r in db.execute("SELECT outcome FROM webhook_events WHERE provider = 'vapi'"))
    if knobs.get("vapi_duplicate_rate"):
        assert inbox["duplicate"] == len(leads)
    booked = sum(1 for r in rows if r[2] == "booked")
    assert db.execute("SELECT count(*) FROM billing_events").fetchone()[0] == booked
    assert db.execute("SELECT count(*) FROM pipeline_events WHERE event_type = 'call_completed'").fetchone()[0] \
        == len(leads)


def test_a_lost_report_is_recovered_from_vapi(db, postgres, start_sandbox, tmp_path, monkeypatch):
    """VAPI never retries a report: a call left open is looked up, and its outcome still lands."""
    monkeypatch.setenv(VAPI_SECRETS_ENV, HOOK_SECRET)
    monkeypatch.delenv(VAPI_AUTH_ENV, raising=False)
    db.execute("TRUNCATE gateway_rate_limits")
    sandbox_url = start_sandbox(SandboxConfig(vapi_webhook_secret=HOOK_SECRET, vapi_report_delay_s=0.05,
                                              vapi_lost_rate=1.0))
    broker = add_broker(db)
    leads = [add_consenting_lead(db, broker, phone=f"+1212555030{i}") for i in range(3)]
    with running_gateway(GatewaySettings(postgres=postgres, upload_dir=tmp_path)) as gateway_url:
        resources = wired_resources(postgres, sandbox_url, gateway_url)
        vapi = resources["vapi"]
        monkeypatch.setattr(voice_assets, "utc_now", lambda: AT)
        assert dg.materialize([voice_assets.voice_calls], resources=resources).success
        wait_for_messages(sandbox_url, 0, len(leads))  # status updates only: every report is lost
    assert db.execute("SELECT count(*) FROM webhook_events WHERE event_type = 'end-of-call-report'").fetchone()[0] == 0

    monkeypatch.setattr(voice_assets, "utc_now", lambda: AT + timedelta(hours=1))
    result = dg.materialize([voice_assets.voice_calls, voice_assets.call_outcomes], resources=resources)
    assert result.success
    meta = result.asset_materializations_for_node("voice_calls")[0].metadata
    assert meta["recovered_reports"].value == len(leads)
    rows = db.execute("SELECT status, outcome IS NOT NULL FROM calls").fetchall()
    assert rows == [("ended", True)] * len(leads)
    # and again: nothing is recovered twice
    again = dg.materialize([voice_assets.voice_calls], resources=resources)
    assert again.asset_materializations_for_node("voice_calls")[0].metadata["recovered_reports"].value == 0
