"""`equity bench reliability`: faults injected on purpose, and what the pipeline did about them.

Each scenario runs on its own throw-away database of the embedded cluster and returns what it
injected, what it found, and the offending rows by id (at most ten per kind), so a failure names
the lead that went wrong:

- ``provider_faults``: N leads verified against a sandbox *process* answering 30% of requests
  5xx, after a burst of 429s. Every lead must end verified, or with a pending dead letter of the
  verify stage; a lead with neither is lost.
- ``campaign_kill``: the campaign day's job runs in a child process that is killed with SIGKILL
  once the sandbox's Instantly has received part of the day, then runs again to the end. The
  sandbox counts what Instantly received per lead: a lead uploaded twice is a double send; a lead
  selected for the day that never reached Instantly, and did not fail with a reason, is lost.
- ``compliance``: leads in multi-zone places (property ZIP and phone area code in different zones)
  with every kind of consent (granted, revoked, none, for another number, suppressed, without
  evidence), the clock advanced through DST days in steps; at every step the `voice_calls`
  selection (SQL pre-filter, then the gate and planner) decides, and every allowed call is checked
  against an independent oracle: 08:00–21:00 local in every zone of the place and the phone (zones
  written down here by hand, not taken from the gate's tables) and a consent the generator knows to
  be valid. Half way, a revocation is recorded for some leads: later steps must honour it.
- ``gateway_load``: signed Instantly webhooks offered open-loop at 1,000 req/s for 60 s to a gateway
  process on loopback (bounded, stops by itself); every accepted event must be in the inbox once.

Prints one JSON object with ``lost_rows``, ``double_sends`` and ``compliance_violations`` summed
over the scenarios, ``gateway_p99_ms`` / ``gateway_req_per_s``, and each scenario's own figures::

    equity bench reliability --json
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import date, datetime, time as clock, timedelta, timezone
from typing import IO, Any
from zoneinfo import ZoneInfo

import dagster as dg
import psycopg

from ..campaign.definitions import defs as campaign_defs
from ..campaign.partitions import campaign_days
from ..db.resources import PostgresResource
from ..sandbox import SandboxConfig, SandboxControl
from ..vendors.batchdata import BatchDataResource
from ..vendors.instantly import InstantlyResource
from ..vendors.melissa import MelissaResource
from ..verify.assets import verified_leads
from ..verify.store import STAGE as VERIFY_STAGE
from ..voice.calls import load_candidates
from ..voice.planner import plan_calls
from . import campaign as campaign_bench
from . import verify as verify_bench
from . import webhooks as webhooks_bench
from .common import fresh_database

OPTIONS = {"leads"}
SHOW = 10  # offending ids listed per kind
INSTANTLY_PATH = "/api/v2/leads/add"
MELISSA_PATH = "/v3/WEB/ContactVerify/doContactVerify"
BATCHDATA_PATH = "/api/v3/property/skip-trace"


# --------------------------------------------------------------------------------------------
# provider faults
# --------------------------------------------------------------------------------------------

_VERIFY_OUTCOME = """
SELECT l.id::text,
       l.verified_at IS NOT NULL,
       EXISTS (SELECT 1 FROM pipeline_dlq d WHERE d.stage = %(stage)s AND d.source_ref = 'lead:' || l.id
                                              AND d.status = 'pending')
FROM leads l
"""


def provider_faults(leads: int = 2000, *, error_rate: float = 0.3, throttle_burst: int = 8,
                    chunk_size: int = 20) -> dict[str, Any]:
    """Verify ``leads`` leads through 5xx faults and a 429 burst; reconcile every lead."""
    def inject(control: SandboxControl) -> None:
        control.set_faults(error_rate=error_rate, fail_next=throttle_burst, fail_next_status=429, retry_after_s=1)

    return _verify_through_faults(leads, inject, {"error_rate": error_rate, "throttle_burst_429": throttle_burst},
                                  chunk_size=chunk_size)


def provider_timeouts(leads: int = 2000, *, melissa_timeout_rate: float = 0.3, hang_s: float = 5.0,
                      client_timeout_s: float = 1.0, max_retries: int = 1, chunk_size: int = 20,
                      max_runs: int = 12) -> dict[str, Any]:
    """Verify through providers that hang ``hang_s`` (longer than the client waits) on some requests.

    Melissa hangs on a share of requests and BatchData, the fallback, on every one: a client gives
    up after ``client_timeout_s``, backs off and retries; a chunk whose Melissa tries all time out
    falls back to BatchData, times out there too and goes to the DLQ with the timeout as its reason.
    When both providers' circuits have opened the run stops claiming, and the schedule's next run
    carries on: runs repeat (up to ``max_runs``) until every lead is verified or dead-lettered.
    """
    def inject(control: SandboxControl) -> None:
        control.set_faults(timeout_s=hang_s, path_faults={MELISSA_PATH: {"timeout_rate": melissa_timeout_rate},
                                                          BATCHDATA_PATH: {"timeout_rate": 1.0}})

    return _verify_through_faults(
        leads, inject, {"melissa_timeout_rate": melissa_timeout_rate, "batchdata_timeout_rate": 1.0,
                        "hang_s": hang_s, "client_timeout_s": client_timeout_s, "client_max_retries": max_retries},
        chunk_size=chunk_size, max_runs=max_runs,
        client={"timeout_s": client_timeout_s, "max_retries": max_retries, "backoff_factor": 0.2,
                "backoff_jitter": 0.2})


def _verify_through_faults(leads: int, inject, injected: dict[str, Any], *, chunk_size: int, max_runs: int = 1,
                           client: dict[str, Any] | None = None) -> dict[str, Any]:
    """`verified_leads` over ``leads`` fresh leads against a sandbox process with ``inject``'s faults,
    run again (as the schedule would) while some lead is neither verified nor dead-lettered."""
    client = client or {}
    runs: list[dict[str, Any]] = []
    with fresh_database("equity_rel_faults") as (_, dsn), verify_bench.sandbox_process(latency_ms=0) as url:
        verify_bench.seed_data(dsn, leads, brokers=10)
        control = SandboxControl(url)
        inject(control)
        keys = SandboxConfig()
        started = time.perf_counter()
        while len(runs) < max_runs:
            postgres = PostgresResource(dsn=dsn, application_name="equity_reliability")
            result = dg.materialize(
                [verified_leads],
                resources={
                    "postgres": postgres,
                    "melissa": MelissaResource(license_key=keys.melissa_license_key, base_url=url, **client),
                    "batchdata": BatchDataResource(api_token=keys.batchdata_api_token, base_url=url, **client),
                },
                run_config={"ops": {"verified_leads": {"config": {"chunk_size": chunk_size,
                                                                  "max_leads_per_run": leads}}}},
                instance=dg.DagsterInstance.ephemeral(), raise_on_error=False,
            )
            postgres.close()
            metadata = {}
            if result.success:
                [materialization] = result.asset_materializations_for_node("verified_leads")
                metadata = {k: v.value for k, v in materialization.metadata.items()}
            failure = next((e.event_specific_data.error.message.strip()[:200] for e in result.all_events
                            if e.is_step_failure), None)
            runs.append({"success": result.success, "verified": metadata.get("leads_verified"),
                         "dlq": metadata.get("dlq"), "retries": metadata.get("retries"), "failure": failure})
            rows = _verify_outcome(dsn)
            if all(ok or dlq for _, ok, dlq in rows):
                break
        seconds = time.perf_counter() - started
        stats = control.stats()
        with psycopg.connect(dsn) as conn:
            conn.execute("SET ROLE service_role")
            reasons = Counter(r[0] for r in conn.execute(
                "SELECT regexp_replace(reason, 'after [0-9]+ retries', 'after N retries', 'g') FROM pipeline_dlq "
                "WHERE stage = %s AND status = 'pending'", (VERIFY_STAGE.value,)))
    verified = [lead for lead, ok, _ in rows if ok]
    dead = [lead for lead, ok, dlq in rows if dlq and not ok]
    lost = [lead for lead, ok, dlq in rows if not ok and not dlq]
    return {
        "injected": {**injected, "leads": leads, "injected_5xx": stats["injected_5xx"],
                     "injected_429": stats["injected_429"], "injected_timeouts": stats.get("injected_timeouts", 0)},
        "found": {"runs": runs, "run_success": runs[-1]["success"], "seconds": round(seconds, 1),
                  "leads": len(rows), "verified": len(verified), "in_dlq": len(dead), "dlq_reasons": dict(reasons),
                  "client_retries": sum(r["retries"] or 0 for r in runs), "lost": len(lost),
                  "lost_leads": lost[:SHOW],
                  "reconciles": len(verified) + len(dead) + len(lost) == len(rows) == leads and not lost},
        "lost_rows": len(lost),
    }


def _verify_outcome(dsn: str) -> list[tuple[str, bool, bool]]:
    """(lead id, verified?, pending verify dead letter?) of every lead."""
    with psycopg.connect(dsn) as conn:
        conn.execute("SET ROLE service_role")
        return conn.execute(_VERIFY_OUTCOME, {"stage": VERIFY_STAGE.value}).fetchall()


# --------------------------------------------------------------------------------------------
# kill -9 of the campaign push
# --------------------------------------------------------------------------------------------

_CHILD = """
import sys
from equity_assets.bench.reliability import campaign_day
campaign_day(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
"""

_SENDS = "SELECT l.email, s.status, s.error FROM campaign_sends s JOIN leads l ON l.id = s.lead_id WHERE s.batch_date = %s"


def campaign_day(dsn: str, sandbox_url: str, partition: str, chunk_size: int) -> bool:
    """The scheduled campaign job for one day, as the child process (and the re-run) runs it."""
    postgres = PostgresResource(dsn=dsn, max_size=2)
    instantly = InstantlyResource(api_key=SandboxConfig().instantly_api_key, base_url=sandbox_url,
                                  chunk_size=chunk_size)
    defs = dg.Definitions.merge(campaign_defs, dg.Definitions(resources={"postgres": postgres, "instantly": instantly}))
    try:
        result = defs.resolve_job_def("daily_campaign_job").execute_in_process(
            partition_key=partition, instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
    finally:
        postgres.close()
    return result.success


def _start_day(dsn: str, url: str, partition: str, chunk_size: int, log: IO[bytes],
               env: dict[str, str]) -> subprocess.Popen[bytes]:
    """The day in a child process; its (verbose) log goes to a file, where a full pipe cannot block it."""
    return subprocess.Popen([sys.executable, "-c", _CHILD, dsn, url, partition, str(chunk_size)],
                            stdout=subprocess.DEVNULL, stderr=log, env=env)


def campaign_kill(leads: int = 2000, brokers: int = 8, *, chunk_size: int = 25, push_latency_ms: int = 150,
                  kill_after_leads: int = 200, timeout_s: float = 300.0) -> dict[str, Any]:
    """Kill the campaign day mid-push with SIGKILL, run it again, count uploads per lead."""
    # Both children mint consent links under one secret: the caller's, or a throw-away one.
    env = {**os.environ, "EQUITY_CONSENT_SECRET": os.environ.get("EQUITY_CONSENT_SECRET") or secrets.token_urlsafe(32)}
    partition = campaign_days.get_last_partition_key()
    with fresh_database("equity_rel_campaign") as (admin, app), \
            verify_bench.sandbox_process(latency_ms=0) as url, tempfile.TemporaryFile() as log:
        campaign_bench.seed(admin, app, leads, brokers)
        postgres = PostgresResource(dsn=app, max_size=1)
        campaign_bench.timed_refresh(postgres, full=True)  # the contactable set the 05:30 refresh builds
        postgres.close()
        control = SandboxControl(url)
        control.set_faults(path_faults={INSTANTLY_PATH: {"latency_ms": push_latency_ms}})
        child = _start_day(app, url, partition, chunk_size, log, env)
        deadline = time.monotonic() + timeout_s
        received_at_kill = 0
        while child.poll() is None and time.monotonic() < deadline:
            received_at_kill = control.stats()["records"].get("instantly_leads", 0)
            if received_at_kill >= kill_after_leads:
                os.kill(child.pid, signal.SIGKILL)
                break
            time.sleep(0.05)
        first_exit = child.wait(timeout=30)
        killed = first_exit == -signal.SIGKILL
        log.seek(0)
        log.truncate()
        rerun = _start_day(app, url, partition, chunk_size, log, env)
        rerun.wait(timeout=timeout_s)
        log.seek(0)
        rerun_err = log.read()
        control.set_faults(path_faults={INSTANTLY_PATH: None})
        uploads: dict[str, int] = {}
        with psycopg.connect(app) as conn:
            conn.execute("SET ROLE service_role")
            campaigns = [r[0] for r in conn.execute("SELECT instantly_campaign_id FROM brokers")]
            sends = conn.execute(_SENDS, (date.fromisoformat(partition),)).fetchall()
        for campaign in campaigns:
            for lead in control.campaign_leads(campaign):
                uploads[lead["email"]] = uploads.get(lead["email"], 0) + lead["upload_count"]
        received = control.stats()["records"].get("instantly_leads", 0)
    twice = sorted(email for email, n in uploads.items() if n > 1)
    status = Counter(s for _, s, _ in sends)
    lost = sorted(email for email, s, error in sends
                  if email not in uploads and not (s == "failed" and error))
    pushed_not_received = sorted(email for email, s, _ in sends if s == "pushed" and email not in uploads)
    return {
        "injected": {"signal": "SIGKILL", "after_instantly_received": received_at_kill, "partition": partition,
                     "leads": leads, "chunk_size": chunk_size, "push_latency_ms": push_latency_ms},
        "found": {"killed_mid_push": killed and 0 < received_at_kill < len(sends),
                  "rerun_exit_code": rerun.returncode,
                  "rerun_error_tail": rerun_err.decode(errors="replace")[-500:] if rerun.returncode else "",
                  "selected": len(sends), "sends_by_status": dict(status),
                  "leads_in_instantly": len(uploads), "lead_records_received": received,
                  "records_sent_again": received - sum(uploads.values()),
                  "uploaded_twice": twice[:SHOW], "lost": lost[:SHOW],
                  "pushed_but_not_in_instantly": pushed_not_received[:SHOW]},
        "double_sends": len(twice),
        "lost_rows": len(lost) + len(pushed_not_received),
    }


# --------------------------------------------------------------------------------------------
# compliance over DST days and multi-zone places
# --------------------------------------------------------------------------------------------

# (ZIP, state, the zone of that ZIP) — written down by hand, independent of the gate's tables.
PLACES = (
    ("10001", "NY", "America/New_York"), ("32501", "FL", "America/Chicago"),
    ("79901", "TX", "America/Denver"), ("85004", "AZ", "America/Phoenix"),
    ("97914", "OR", "America/Boise"), ("58601", "ND", "America/Denver"),
    ("46320", "IN", "America/Chicago"), ("33130", "FL", "America/New_York"),
    ("94103", "CA", "America/Los_Angeles"), ("60601", "IL", "America/Chicago"),
)
# Area code → every zone it reaches (850: the Florida panhandle spans Central and Eastern, etc.).
AREAS = {
    "212": ("America/New_York",), "850": ("America/Chicago", "America/New_York"),
    "915": ("America/Denver",), "602": ("America/Phoenix",),
    "541": ("America/Los_Angeles", "America/Boise"), "701": ("America/Chicago", "America/Denver"),
    "219": ("America/Chicago",), "305": ("America/New_York",), "415": ("America/Los_Angeles",),
    "312": ("America/Chicago",),
}
FEDERAL_WINDOW = (clock(8), clock(21))
# What happens to a lead's consent, by lead number modulo 8; only the first three are valid.
CONSENT_KINDS = ("granted", "granted", "granted", "revoked", "no_audit_row", "other_number",
                 "phone_suppressed", "no_disclosure_version")
GRANTED_AT = datetime(2026, 1, 5, 15, 0, tzinfo=timezone.utc)
DEFAULT_DAYS = tuple(date(2026, 10, 18) + timedelta(days=d) for d in range(30)) + (
    date(2026, 3, 7), date(2026, 3, 8), date(2026, 3, 9))


def compliance_lead(i: int) -> dict[str, Any]:
    """Lead number ``i`` of the compliance run: its place, phone and consent kind."""
    zip_code, state, zone = PLACES[i % len(PLACES)]
    area = list(AREAS)[(i * 3 + i // len(PLACES)) % len(AREAS)]
    phone = f"+1{area}2{i % 1_000_000:06d}"
    return {"zip": zip_code, "state": state, "zones": {zone, *AREAS[area]}, "phone": phone,
            "consent": CONSENT_KINDS[i % len(CONSENT_KINDS)]}


def seed_compliance(conn: psycopg.Connection, n: int) -> dict[str, dict[str, Any]]:
    """N leads with their consent history; returns the generator's truth per lead id."""
    broker = conn.execute("INSERT INTO brokers (name) VALUES ('reliability') RETURNING id").fetchone()[0]
    truth: dict[str, dict[str, Any]] = {}
    for i in range(n):
        lead = compliance_lead(i)
        lead_id = str(conn.execute(
            """INSERT INTO leads (assigned_broker_id, phone, consented_phone, consent, phone_verified,
                                  last_reply_intent, campaign_status, property_zip, property_state)
               VALUES (%s, %s, %s, true, true, 'interested', 'replied', %s, %s) RETURNING id""",
            (broker, lead["phone"], lead["phone"], lead["zip"], lead["state"])).fetchone()[0])
        kind = lead["consent"]
        if kind != "no_audit_row":
            conn.execute(
                """INSERT INTO lead_consent_audit (lead_id, broker_id, decision, phone_number, disclosure_version,
                                                   method, created_at) VALUES (%s, %s, 'granted', %s, %s, 'form', %s)""",
                (lead_id, broker, "+12125550100" if kind == "other_number" else lead["phone"],
                 None if kind == "no_disclosure_version" else "pewc-2026-01-v1", GRANTED_AT))
        if kind == "revoked":
            revoke(conn, lead_id, GRANTED_AT + timedelta(days=3))
        if kind == "phone_suppressed":
            conn.execute("""INSERT INTO suppression_list (channel, value, reason, source)
                            VALUES ('phone', %s, 'reliability', 'revocation')""", (lead["phone"],))
        truth[lead_id] = {**lead, "consent_valid_until": None if kind == "granted" else GRANTED_AT}
    return truth


def revoke(conn: psycopg.Connection, lead_id: str, at: datetime) -> None:
    conn.execute("""INSERT INTO lead_consent_audit (lead_id, decision, reason, method, created_at)
                    VALUES (%s, 'revoked', 'reliability: stop calling me', 'reply', %s)""", (lead_id, at))


def oracle_violations(truth: dict[str, Any], at: datetime) -> list[str]:
    """Why calling this lead at ``at`` would break the rules, judged without the gate's code."""
    found = []
    until = truth["consent_valid_until"]
    if until is not None and at >= until:
        found.append(f"no_valid_consent:{truth['consent']}")
    for zone in sorted(truth["zones"]):
        local = at.astimezone(ZoneInfo(zone)).time()
        if not FEDERAL_WINDOW[0] <= local < FEDERAL_WINDOW[1]:
            found.append(f"outside_window:{zone}@{local:%H:%M}")
    return found


def compliance(leads: int = 2000, days: tuple[date, ...] = DEFAULT_DAYS,
               step: timedelta = timedelta(minutes=30)) -> dict[str, Any]:
    """Advance the clock through ``days``; every allowed call is checked by the oracle."""
    moments = [datetime.combine(d, clock(), timezone.utc) + k * step
               for d in sorted(days) for k in range(int(timedelta(days=1) / step))]
    revoke_at = moments[len(moments) // 2]
    pairs = allowed = 0
    violations: list[dict[str, Any]] = []
    refusals: Counter[str] = Counter()
    late_revoked: list[str] = []
    with fresh_database("equity_rel_compliance") as (_, dsn), psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET ROLE service_role")
        truth = seed_compliance(conn, leads)
        conn.execute("ANALYZE")
        for at in moments:
            if at == revoke_at:  # revocations arrive mid-run, in odd wording, and must apply at once
                late_revoked = [lead_id for lead_id, t in truth.items() if t["consent"] == "granted"][::7]
                for lead_id in late_revoked:
                    revoke(conn, lead_id, at)
                    truth[lead_id]["consent_valid_until"] = at
            candidates = load_candidates(conn, at, leads)
            plan = plan_calls(candidates, at, open_by_broker={}, open_total=0)
            pairs += len(candidates)
            for lead_id, decision in plan.decisions.items():
                if not decision.allowed:
                    refusals.update(reason.split(":", 1)[0] for reason in decision.reasons)
                    continue
                allowed += 1
                wrong = oracle_violations(truth[lead_id], at)
                if wrong:
                    violations.append({"lead": lead_id, "at": at.isoformat(), "phone": truth[lead_id]["phone"],
                                       "zip": truth[lead_id]["zip"], "why": wrong})
    kinds = Counter(reason.split(":", 1)[0] for v in violations for reason in v["why"])
    return {
        "injected": {"leads": leads, "consent_kinds": dict(Counter(t["consent"] for t in truth.values())),
                     "days": len(days), "dst_days": [d.isoformat() for d in sorted(days) if _is_dst_change(d)],
                     "moments": len(moments), "step_minutes": step.total_seconds() / 60,
                     "revoked_mid_run": len(late_revoked), "revoked_at": revoke_at.isoformat()},
        "found": {"pairs_gated": pairs, "allowed": allowed, "refusals_by_reason": dict(refusals),
                  "violations_by_kind": dict(kinds), "violations": violations[:SHOW]},
        "compliance_violations": len(violations),
    }


def _is_dst_change(day: date) -> bool:
    zone = ZoneInfo("America/New_York")
    start = datetime.combine(day, clock(), zone)
    return start.utcoffset() != (start + timedelta(days=1)).utcoffset()


# --------------------------------------------------------------------------------------------
# gateway load
# --------------------------------------------------------------------------------------------


def gateway_load(rate: int = 1000, seconds: float = 60.0, workers: int = 2) -> dict[str, Any]:
    """Signed webhooks (Instantly + VAPI) and uploads at ``rate`` req/s on loopback (`equity bench webhooks`)."""
    figures = webhooks_bench.run(rate, seconds, workers)
    return {
        "injected": {key: figures[key] for key in ("offered_rate", "seconds", "workers", "connections", "requests",
                                                   "warm_up_requests")},
        "found": {key: figures[key] for key in ("by_kind", "statuses", "first_errors", "p50_ms", "max_ms",
                                                "accepted_per_s", "inbox_rows", "missing_from_inbox",
                                                "same_id_answered_twice", "event_keys_stored_twice",
                                                "uploads_accepted", "uploads_missing", "cpu_cores_used")}
                 | {"inbox_exactly_once": figures["webhooks_in_inbox"] == figures["webhooks_accepted"]
                    == figures["inbox_rows"] and figures["event_keys_stored_twice"] == 0},
        "gateway_rps": figures["accepted_per_s"],
        "gateway_p99_ms": figures["p99_ms"],
        "gateway_errors": figures["errors"],
        "webhooks_accepted": figures["webhooks_accepted"],
        "webhooks_in_inbox": figures["webhooks_in_inbox"],
        "lost_rows": figures["lost"],
    }


# --------------------------------------------------------------------------------------------


def run(leads: int = 2000) -> dict[str, Any]:
    """Every scenario (``leads`` leads; a fifth of them in the month-long compliance run)."""
    started = time.perf_counter()
    scenarios = {
        "provider_faults": provider_faults(leads),
        "provider_timeouts": provider_timeouts(max(100, leads // 4)),
        "campaign_kill": campaign_kill(leads),
        "compliance": compliance(max(50, leads // 5), step=timedelta(hours=1)),
        "gateway_load": gateway_load(),
    }
    return {
        "lost_rows": sum(s.get("lost_rows", 0) for s in scenarios.values()),
        "double_sends": sum(s.get("double_sends", 0) for s in scenarios.values()),
        "compliance_violations": sum(s.get("compliance_violations", 0) for s in scenarios.values()),
        **{key: scenarios["gateway_load"][key] for key in ("gateway_rps", "gateway_p99_ms", "gateway_errors",
                                                           "webhooks_accepted", "webhooks_in_inbox")},
        "seconds": round(time.perf_counter() - started, 1),
        "scenarios": scenarios,
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
