"""voice_calls against a real database and the sandbox's VAPI over HTTP: gate, pools, caps, idempotency."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import dagster as dg
import psycopg
import pytest
import requests

from equity_assets.db.resources import PostgresResource
from equity_assets.sandbox import SandboxConfig
from equity_assets.vendors.vapi import VapiResource
from equity_assets.voice import assets as voice_assets
from equity_assets.voice.calls import load_candidates, reserve_call
from equity_assets.voice.sensors import any_window_open, voice_calls_schedule

from .conftest import add_broker, add_consenting_lead

KEY = SandboxConfig().vapi_api_key


def next_weekday_at(hour_utc: int) -> datetime:
    """A Wednesday after today at ``hour_utc``: inside the window from New York to California."""
    day = datetime.now(timezone.utc).replace(hour=hour_utc, minute=0, second=0, microsecond=0) + timedelta(days=1)
    while day.weekday() != 2:
        day += timedelta(days=1)
    return day


AT = next_weekday_at(18)  # 13:00/14:00 in New York, 10:00/11:00 in California


@pytest.fixture
def pinned(monkeypatch: pytest.MonkeyPatch) -> datetime:
    monkeypatch.setattr(voice_assets, "utc_now", lambda: AT)
    return AT


def vapi_for(url: str, **fields) -> VapiResource:
    return VapiResource(**{"api_key": KEY, "base_url": url, **fields})


def run(postgres: PostgresResource, vapi: VapiResource, **config) -> dg.MaterializeResult:
    result = dg.materialize([voice_assets.voice_calls], resources={"postgres": postgres, "vapi": vapi},
                            run_config={"ops": {"voice_calls": {"config": config}}})
    assert result.success
    return result.asset_materializations_for_node("voice_calls")[0].metadata


def sandbox_calls(url: str) -> list[dict]:
    return requests.get(f"{url}/call", headers={"Authorization": f"Bearer {KEY}"}, timeout=5).json()


def test_places_allowed_calls_and_counts_refusals_by_reason(db: psycopg.Connection, postgres, sandbox_url, pinned):
    broker = add_broker(db, numbers=(("+12125550000", "NY", 60.0), ("+13055550000", "FL", 50.0),
                                     ("+12125550001", "NY", 95.0)))
    ny = add_consenting_lead(db, broker)
    fl = add_consenting_lead(db, broker, phone="+13055550199", zip_code="33130", state="FL")
    add_consenting_lead(db, broker, phone="+12125550102", consent_phone="+12125550999")  # other number
    suppressed = add_consenting_lead(db, broker, phone="+12125550103")
    db.execute("INSERT INTO suppression_list (channel, value, reason) VALUES ('phone', %s, 'dnc')",
               (suppressed.phone,))
    add_consenting_lead(db, broker, phone="+12125550104", verified=False)
    revoked = add_consenting_lead(db, broker, phone="+12125550105")
    db.execute("INSERT INTO lead_consent_audit (lead_id, broker_id, decision, phone_number) VALUES (%s, %s, 'revoked', %s)",
               (revoked.id, broker, revoked.phone))

    meta = run(postgres, vapi_for(sandbox_url))
    assert meta["placed"].value == 2 and meta["candidates"].value == 6
    assert meta["refusals_by_reason"].value == {"consent_for_other_number": 1, "suppressed": 1,
                                                 "phone_unverified": 1, "consent_revoked": 1}
    rows = {r[0]: r[1:] for r in db.execute(
        """SELECT c.lead_id::text, c.attempt_number, n.e164, c.vapi_call_id IS NOT NULL, l.call_attempt_count,
                  l.vapi_call_id = c.vapi_call_id
           FROM calls c JOIN broker_phone_numbers n ON n.id = c.phone_number_id JOIN leads l ON l.id = c.lead_id""")}
    # local presence first (Florida number for the Florida lead), then health (the 95 New York number)
    assert rows == {ny.id: (1, "+12125550001", True, 1, True), fl.id: (1, "+13055550000", True, 1, True)}
    placed = sandbox_calls(sandbox_url)
    assert sorted(c["customer"]["number"] for c in placed) == sorted([ny.phone, fl.phone])
    assert all(c["assistantOverrides"]["metadata"]["idempotency_key"].startswith("call:") for c in placed)
    assert db.execute("SELECT count(*) FROM pipeline_events WHERE event_type = 'call_initiated'").fetchone()[0] == 2

    again = run(postgres, vapi_for(sandbox_url))  # the open calls keep their leads out of the next tick
    assert again["placed"].value == 0
    assert len(sandbox_calls(sandbox_url)) == 2


def test_nothing_is_placed_outside_the_window(db, postgres, sandbox_url, monkeypatch):
    monkeypatch.setattr(voice_assets, "utc_now", lambda: AT.replace(hour=3))  # 22:00/23:00 in New York
    add_consenting_lead(db, add_broker(db))
    meta = run(postgres, vapi_for(sandbox_url))
    assert meta["placed"].value == 0 and meta["refused_outside_window"].value == 1
    assert sandbox_calls(sandbox_url) == []


def test_per_broker_concurrency_cap(db, postgres, sandbox_url, pinned):
    broker = add_broker(db)
    for i in range(3):
        add_consenting_lead(db, broker, phone=f"+1212555011{i}")
    meta = run(postgres, vapi_for(sandbox_url), per_broker_concurrency=1)
    assert meta["placed"].value == 1 and meta["deferred"].value == {"broker_concurrency_cap": 2}
    meta = run(postgres, vapi_for(sandbox_url), per_broker_concurrency=5, global_concurrency=2)
    assert meta["placed"].value == 1 and meta["deferred"].value == {"global_concurrency_cap": 1}


def test_a_lead_without_a_number_in_the_pool_is_not_called(db, postgres, sandbox_url, pinned):
    lead = add_consenting_lead(db, add_broker(db, numbers=()))
    meta = run(postgres, vapi_for(sandbox_url))
    assert meta["not_reserved"].value == {"no_number": 1}
    assert db.execute("SELECT call_attempt_count FROM leads WHERE id = %s", (lead.id,)).fetchone()[0] == 0


def test_a_reservation_left_by_a_crash_is_placed_once(db, postgres, sandbox_url, pinned):
    lead = add_consenting_lead(db, add_broker(db))
    with postgres.connection() as conn:  # the run that died after reserving, before VAPI answered
        (facts,) = load_candidates(conn, AT - timedelta(minutes=5), 10)
        res = reserve_call(conn, facts, AT - timedelta(minutes=5))
    vapi = vapi_for(sandbox_url)
    vapi.create_call(idempotency_key=res.idempotency_key, phone_number_id=res.vapi_phone_number_id,
                     customer_number=res.dial_number)  # ... and VAPI had placed the call
    meta = run(postgres, vapi)
    assert meta["resumed_reservations"].value == 1 and meta["placed"].value == 1
    assert len(sandbox_calls(sandbox_url)) == 1  # found by its idempotency key, not placed again
    assert db.execute("SELECT count(*), min(vapi_call_id) IS NOT NULL FROM calls WHERE lead_id = %s",
                      (lead.id,)).fetchone() == (1, True)
    assert run(postgres, vapi)["placed"].value == 0


@pytest.mark.parametrize("sandbox_config", [SandboxConfig(vapi_answer_delay_s=1.5)], indirect=True)
def test_create_that_timed_out_is_found_not_repeated(sandbox_url):
    vapi = vapi_for(sandbox_url, timeout_s=0.4, backoff_factor=0.1, max_retries=3)
    call = vapi.create_call(idempotency_key="call:x:1", phone_number_id="pn-1", customer_number="+12125550101")
    assert call.metadata["idempotency_key"] == "call:x:1"
    assert len(sandbox_calls(sandbox_url)) == 1


@pytest.mark.parametrize("status", [429, 503])
def test_create_retries_429_and_5xx(sandbox_url, sandbox_control, status):
    # /call faults hit the POST and the look-up GET alike; either way one call is placed
    sandbox_control.set_faults(path_faults={"/call": {"fail_next": 3, "fail_next_status": status, "retry_after_s": 0}})
    vapi = vapi_for(sandbox_url, backoff_factor=0.05)
    call = vapi.create_call(idempotency_key="call:y:1", phone_number_id="pn-1", customer_number="+12125550101")
    assert call.status == "queued"
    posts = sandbox_control.stats()["responses"]["POST /call"]
    assert posts["201"] == 1 and posts[str(status)] >= 1
    assert len(sandbox_calls(sandbox_url)) == 1


def test_a_refused_create_is_dead_lettered(db, postgres, sandbox_url, pinned):
    lead = add_consenting_lead(db, add_broker(db))
    meta = run(postgres, vapi_for(sandbox_url, api_key="wrong-key"))
    assert meta["failed"].value == 1
    assert db.execute("SELECT status, outcome FROM calls WHERE lead_id = %s", (lead.id,)).fetchone() == ("failed", "failed")
    assert db.execute("SELECT stage FROM pipeline_dlq").fetchall() == [("voice_calls",)]


def test_schedule_runs_only_while_a_window_is_open():
    assert any_window_open(datetime(2026, 7, 1, 16, 0, tzinfo=timezone.utc))
    assert not any_window_open(datetime(2026, 7, 1, 11, 30, tzinfo=timezone.utc))  # 07:30 Puerto Rico, 21:30 Guam
    schedule = voice_calls_schedule
    night = dg.build_schedule_context(scheduled_execution_time=datetime(2026, 7, 1, 11, 30, tzinfo=timezone.utc))
    assert isinstance(schedule.evaluate_tick(night).skip_message, str)
    day = dg.build_schedule_context(scheduled_execution_time=datetime(2026, 7, 1, 16, 0, tzinfo=timezone.utc))
    assert [r.run_key for r in schedule.evaluate_tick(day).run_requests] == ["voice_calls:20260701T1600"]
