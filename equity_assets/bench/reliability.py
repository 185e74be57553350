"""`equity bench reliability`: faults injected on purpose, and what the pipeline did about them.

Each scenario runs on a throw-away database and returns what it injected, what it found, and the
offending rows by id (at most ten per kind), so a failure names the lead, row or call that went
wrong. The servers the crash scenarios kill are their own, never the shared embedded cluster.

- ``provider_faults``: N leads verified against a sandbox *process* answering 30% of requests
  5xx, after a burst of 429s. Every lead must end verified, or with a pending dead letter of the
  verify stage; a lead with neither is lost.
- ``provider_timeouts``: the providers hang 5 s (longer than the client waits) on a share of
  requests — Melissa on some, BatchData, the fallback, on all: clients time out, back off, retry,
  fall back, then dead-letter; runs repeat as the schedule would until every lead reconciles.
- ``campaign_kill`` / ``campaign_database_kill``: the campaign day's job runs in a child process;
  once the sandbox's Instantly has received part of the day, the child (or every process of its
  database server) gets SIGKILL; the server restarts, the day runs again. The sandbox counts what
  Instantly received per lead: a lead uploaded twice is a double send; a lead selected for the day
  that never reached Instantly, and did not fail with a reason, is lost.
- ``ingest_run_kill`` / ``ingest_database_kill``: `equity ingest` killed (or its database killed)
  while the merge holds its lock; after the restart, the re-run and the same command again, every
  file row is lineage or a dead letter and no lead is there twice (``crashes.ingest_crash``).
- ``compliance``: a month of schedules on 10,000 leads with the clock advanced hour by hour
  through DST days: callable leads in multi-zone places with every kind of consent, mail leads
  (households sharing an address, addresses suppressed beforehand) selected by each weekday's
  06:00 PT campaign day, replies in odd wording (revocations among them) through the inbox and the
  real reply processing. An independent oracle judges every allowed call (08:00–21:00 local in
  every zone of the place and the phone, zones written down here by hand; a consent the generator
  knows to be valid), every e-mail selected (never to an address suppressed or revoked by then),
  and every revoking reply (its suppression and do-not-contact applied at once, in the same run).
- ``gateway_load``: signed Instantly and VAPI webhooks plus signed uploads offered open-loop at
  1,000 req/s for 60 s to a multi-worker gateway on loopback (bounded, stops by itself); every
  accepted webhook must be in the inbox exactly once (``webhooks.run``).

Prints one JSON object with ``lost_rows``, ``double_sends``, ``duplicate_leads`` and
``compliance_violations`` summed over the scenarios, ``gateway_rps`` / ``gateway_p99_ms`` /
``gateway_errors`` / ``webhooks_accepted`` / ``webhooks_in_inbox``, and each scenario's figures::

    equity bench reliability --json
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, time as clock, timedelta, timezone
from typing import IO, Any
from zoneinfo import ZoneInfo

import dagster as dg
import psycopg
from psycopg.types.json import Jsonb

from ..campaign.contactable import refresh_contactable
from ..campaign.definitions import defs as campaign_defs
from ..campaign.feeder import select_day
from ..campaign.push import withdraw_uncontactable
from ..campaign.partitions import campaign_days
from ..db.cluster import EmbeddedCluster
from ..db.resources import PostgresResource
from ..engage.inbox import process_event
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
from .crashes import ingest_crash, kill_database, own_cluster, server_of_our_own

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


@contextmanager
def _campaign_database(kill: str, cluster: EmbeddedCluster | None) -> Iterator[tuple[str, str, EmbeddedCluster | None]]:
    """(admin DSN, pipeline DSN, the server to kill): a server of our own when the database dies."""
    if kill == "database":
        with server_of_our_own(cluster) as server, fresh_database("equity_rel_campaign", server) as (admin, app):
            yield admin, app, server
    else:
        with fresh_database("equity_rel_campaign") as (admin, app):
            yield admin, app, None


def campaign_kill(leads: int = 2000, brokers: int = 8, *, chunk_size: int = 25, push_latency_ms: int = 150,
                  kill_after_leads: int = 200, kill: str = "run", timeout_s: float = 300.0,
                  cluster: EmbeddedCluster | None = None) -> dict[str, Any]:
    """SIGKILL the campaign day (``kill="run"``) or its database (``"database"``) mid-push, run the day
    again, count uploads per lead.

    A killed database is restarted at once (crash recovery), as a supervised server would be; the
    interrupted run fails or is killed if it hangs, and the re-run must finish the day. ``cluster``
    (a server of the caller's own, see ``own_cluster``) is the one killed; default: a new one.
    """
    # Both children mint consent links under one secret: the caller's, or a throw-away one.
    env = {**os.environ, CONSENT_SECRET_ENV: os.environ.get(CONSENT_SECRET_ENV) or secrets.token_urlsafe(32)}
    partition = campaign_days.get_last_partition_key()
    with _campaign_database(kill, cluster) as (admin, app, cluster), \
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
        killed_pids: list[int] = []
        while child.poll() is None and time.monotonic() < deadline:
            received_at_kill = control.stats()["records"].get("instantly_leads", 0)
            if received_at_kill >= kill_after_leads:
                if cluster is None:
                    os.kill(child.pid, signal.SIGKILL)
                    killed_pids = [child.pid]
                else:
                    killed_pids = kill_database(cluster)
                    cluster.start()
                break
            time.sleep(0.05)
        try:
            first_exit = child.wait(timeout=180)
        except subprocess.TimeoutExpired:
            child.kill()
            first_exit = child.wait()
        killed = bool(killed_pids) and (cluster is not None or first_exit == -signal.SIGKILL)
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
        "injected": {"signal": "SIGKILL", "target": "campaign day process" if kill == "run" else
                     "postgres (every process)", "processes_killed": len(killed_pids),
                     "after_instantly_received": received_at_kill, "partition": partition,
                     "leads": leads, "chunk_size": chunk_size, "push_latency_ms": push_latency_ms},
        "found": {"killed_mid_push": killed and 0 < received_at_kill < len(sends),
                  "first_exit_code": first_exit, "rerun_exit_code": rerun.returncode,
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
PACIFIC = ZoneInfo("America/Los_Angeles")
CONSENT_SECRET_ENV = "EQUITY_CONSENT_SECRET"
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
            """INSERT INTO leads (assigned_broker_id, email, phone, consented_phone, consent, phone_verified,
                                  last_reply_intent, campaign_status, property_zip, property_state)
               VALUES (%s, %s, %s, %s, true, true, 'interested', 'replied', %s, %s) RETURNING id""",
            (broker, f"call{i}@month.example", lead["phone"], lead["phone"], lead["zip"], lead["state"])
        ).fetchone()[0])
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
        truth[lead_id] = {**lead, "email": f"call{i}@month.example",
                          "consent_valid_until": None if kind == "granted" else GRANTED_AT}
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


# Replies in the wording people really use. The generator knows which revoke (never asking the
# classifier): an address that wrote one must not be mailed or called again, from that moment on.
REVOKING_REPLIES = (
    "pls dont contact me again", "Take me off your list.", "REMOVE", "remove me", "S T O P",
    "Stop emailing and stop calling me", "I revoke my consent to be called.", "Do NOT call this number again",
    "I no longer wish to receive calls or emails from you", "stop.\n\nSent from my iPhone",
    "Please remove my number", "Quit contacting me", "opt-out", "Leave me alone", "don't call me anymore",
    "Never contact me again.", "I withdraw my permission to call", "Cease and desist all contact",
    "No more emails please", "lose my number", "UNSUBSCRIBE",
    "Remove me from your mailing list. Thanks, Bob", "Dejen de llamarme por favor",
    "> On Mon, Oct 19 you wrote: Interested?\nSTOP", "Ne me contactez plus",
)
# Replies that must not break anything (whether the classifier over-reads them is only reported).
OTHER_REPLIES = (
    "Yes, call me tomorrow after 5", "Stop by my office Tuesday, happy to talk", "What's the rate?",
    "Out of office until Monday", "Who is this?", "Sure, what do you need from me?",
    "I can't stop thinking about this, call me",
)
MAIL_LEAD = """
INSERT INTO leads (email, first_name, last_name, property_address, property_city, property_state, property_zip,
                   email_verified, lead_score, assigned_broker_id, campaign_status, created_at, updated_at)
VALUES (%s, 'Mail', %s, %s, 'Austin', 'TX', '78701', true, %s, %s, 'queued', now() - interval '2 days',
        now() - interval '2 days') RETURNING id
"""
HOUSEHOLD_EVERY = 10  # every tenth mail lead shares the previous lead's address (another property, same person)
PRE_SUPPRESSED_EVERY = 13


def seed_mail_cohort(conn: psycopg.Connection, n: int, days: int) -> tuple[str, dict[str, str], set[str]]:
    """``n`` verified, scored, queued leads of one broker whose cap spreads them over the month.

    Returns (the broker's campaign id, lead id → address, the addresses suppressed before the month).
    """
    cap = max(5, -(-n // max(1, days * 5 // 7 - 2)))
    campaign = f"month-campaign-{secrets.token_hex(3)}"
    broker = conn.execute("INSERT INTO brokers (name, daily_cap, instantly_campaign_id) VALUES (%s, %s, %s) "
                          "RETURNING id", ("reliability mail", cap, campaign)).fetchone()[0]
    emails: dict[str, str] = {}
    suppressed: set[str] = set()
    for i in range(n):
        email = f"mail{i - 1 if i % HOUSEHOLD_EVERY == 1 else i}@month.example"
        lead_id = conn.execute(MAIL_LEAD, (email, f"M{i}", f"{i} Month St", round(100 - i * 97 % 100, 2),
                                           broker)).fetchone()[0]
        emails[str(lead_id)] = email
        if i % PRE_SUPPRESSED_EVERY == 5:
            suppressed.add(email)
    for email in sorted(suppressed):
        conn.execute("INSERT INTO suppression_list (channel, value, reason, source, created_at) "
                     "VALUES ('email', %s, 'reliability', 'unsubscribe', now() - interval '3 days') "
                     "ON CONFLICT DO NOTHING", (email,))
    return campaign, emails, suppressed


def send_reply(conn: psycopg.Connection, email: str, text: str, at: datetime) -> str:
    """An Instantly reply through the inbox and the real reply processing, now (same run)."""
    payload = {"timestamp": at.isoformat(), "event_type": "reply_received", "workspace": "reliability",
               "campaign_id": "month", "lead_email": email, "reply_subject": "Re: Your home's equity",
               "reply_text": text}
    with conn.transaction():
        event_id = conn.execute(
            "INSERT INTO webhook_events (provider, event_key, event_type, payload) VALUES ('instantly', %s, "
            "'reply_received', %s) RETURNING id", (secrets.token_hex(16), Jsonb(payload))).fetchone()[0]
        return process_event(conn, event_id).outcome


def revocation_applied(conn: psycopg.Connection, email: str) -> list[str]:
    """What is missing after a revoking reply from ``email``: suppression, consent withdrawn, do-not-contact."""
    missing = []
    if not conn.execute("SELECT 1 FROM suppression_list WHERE channel = 'email' AND value = %s", (email,)).fetchone():
        missing.append("email_not_suppressed")
    if conn.execute("SELECT 1 FROM leads WHERE email = %s AND (consent OR campaign_status <> 'do_not_contact')",
                    (email,)).fetchone():
        missing.append("lead_still_contactable")
    return missing


def campaign_day_selection(conn: psycopg.Connection, day: date, campaign: str, at: datetime) -> list[str]:
    """The 06:00 PT day as the campaign job runs it: contactable refresh, withdrawals, selection."""
    with conn.transaction():
        refresh_contactable(conn)
    with conn.transaction():
        withdraw_uncontactable(conn, day)
        select_day(conn, day, default_campaign=campaign, now=at)
    return [str(r[0]) for r in conn.execute(
        "SELECT lead_id FROM campaign_sends WHERE batch_date = %s AND status = 'queued'", (day,))]


@contextmanager
def _consent_secret() -> Iterator[None]:
    """The campaign selection mints consent links: a throw-away secret unless the caller has one."""
    if os.environ.get(CONSENT_SECRET_ENV):
        yield
        return
    os.environ[CONSENT_SECRET_ENV] = secrets.token_urlsafe(32)
    try:
        yield
    finally:
        os.environ.pop(CONSENT_SECRET_ENV, None)


def compliance(leads: int = 2000, days: tuple[date, ...] = DEFAULT_DAYS,
               step: timedelta = timedelta(minutes=30), reply_share: float = 0.2) -> dict[str, Any]:
    """A month of schedules with the clock advanced in ``step``s; every decision checked by an oracle.

    Half the leads have replied and wait for calls (every kind of consent; multi-zone places); the
    other half are queued for e-mail, some sharing an address (households), some suppressed before
    the month. On every weekday at 06:00 PT the campaign day selects (refresh, withdrawals, caps);
    ``reply_share`` of the mailed write back an hour later, a third of them revoking in odd
    wording. Half way through, a seventh of the callable leads revoke by reply as well. Every reply
    goes through the inbox and the real reply processing at once, and its effects are checked
    right then; every call the gate allows and every e-mail selected is judged by the oracle.
    """
    moments = [datetime.combine(d, clock(), timezone.utc) + k * step
               for d in sorted(days) for k in range(int(timedelta(days=1) / step))]
    revoke_at = moments[len(moments) // 2]
    call_leads, mail_leads = leads - leads // 2, leads // 2
    pairs = allowed = mailed = 0
    violations: list[dict[str, Any]] = []
    refusals: Counter[str] = Counter()
    replies: Counter[str] = Counter()
    over_revoked: list[str] = []
    late_revoked: list[str] = []
    mail_days: set[date] = set()
    with fresh_database("equity_rel_compliance") as (_, dsn), psycopg.connect(dsn, autocommit=True) as conn, \
            _consent_secret():
        conn.execute("SET ROLE service_role")
        truth = seed_compliance(conn, call_leads)
        campaign, mail_emails, suppressed = seed_mail_cohort(conn, mail_leads, len(days))
        pre_suppressed = len(suppressed)
        conn.execute("SELECT analyze_pipeline_table('leads')")
        owed: list[tuple[datetime, str, str]] = []  # replies due: (when, address, text)
        for n, at in enumerate(moments):
            pacific = at.astimezone(PACIFIC)
            if pacific.weekday() < 5 and pacific.hour == 6 and pacific.date() not in mail_days:
                mail_days.add(pacific.date())
                for lead_id in campaign_day_selection(conn, pacific.date(), campaign, at):
                    mailed += 1
                    email = mail_emails.get(lead_id) or truth.get(lead_id, {}).get("email", "?")
                    if email in suppressed:
                        violations.append({"kind": "email_to_suppressed", "lead": lead_id, "email": email,
                                           "at": at.isoformat()})
                    if int(hashlib.sha256(lead_id.encode()).hexdigest(), 16) % 1000 < reply_share * 1000:
                        owed.append((at + timedelta(hours=1), email, ""))
            if at == revoke_at:  # callable leads revoke by reply mid-run, and it must apply at once
                late_revoked = [lead_id for lead_id, t in truth.items() if t["consent"] == "granted"][::7]
                owed.extend((at, truth[lead_id]["email"], "") for lead_id in late_revoked)
            due = [r for r in owed if r[0] <= at]
            owed = [r for r in owed if r[0] > at]
            for k, (_, email, _) in enumerate(due):
                revoking = email.startswith("call") or (k + n) % 3 == 0
                pool = REVOKING_REPLIES if revoking else OTHER_REPLIES
                text = pool[(replies["sent"] + n) % len(pool)]
                replies["sent"] += 1
                outcome = send_reply(conn, email, text, at)
                replies[outcome] += 1
                if revoking:
                    suppressed.add(email)
                    for lead_id, t in truth.items():
                        if t["email"] == email:
                            t["consent_valid_until"] = min(at, t["consent_valid_until"] or at)
                    missing = revocation_applied(conn, email)
                    if missing:
                        violations.append({"kind": "revocation_not_applied", "email": email, "reply": text,
                                           "at": at.isoformat(), "why": missing})
                elif outcome in ("unsubscribe", "hostile"):
                    over_revoked.append(text)
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
                    violations.append({"kind": "call", "lead": lead_id, "at": at.isoformat(),
                                       "phone": truth[lead_id]["phone"], "zip": truth[lead_id]["zip"], "why": wrong})
    kinds: Counter[str] = Counter()
    for v in violations:  # a call names each rule it broke; the others are one kind each
        kinds.update([reason.split(":", 1)[0] for reason in v["why"]] if v["kind"] == "call" else [v["kind"]])
    return {
        "injected": {"leads": leads, "call_leads": call_leads, "mail_leads": mail_leads,
                     "consent_kinds": dict(Counter(t["consent"] for t in truth.values())),
                     "households_sharing_an_address": mail_leads // HOUSEHOLD_EVERY,
                     "pre_suppressed_addresses": pre_suppressed,
                     "days": len(days), "dst_days": [d.isoformat() for d in sorted(days) if _is_dst_change(d)],
                     "moments": len(moments), "step_minutes": step.total_seconds() / 60,
                     "replies": replies["sent"], "revoked_mid_run": len(late_revoked),
                     "revoked_at": revoke_at.isoformat()},
        "found": {"pairs_gated": pairs, "allowed": allowed, "refusals_by_reason": dict(refusals),
                  "campaign_days": len(mail_days), "emails_selected": mailed,
                  "reply_outcomes": {k: v for k, v in replies.items() if k != "sent"},
                  "over_revoked_replies": sorted(set(over_revoked)),
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


def run(leads: int = 2000, month_leads: int = 10_000) -> dict[str, Any]:
    """Every scenario: ``leads`` leads (ten rows each in the ingest crashes), ``month_leads`` in the month."""
    started = time.perf_counter()
    with own_cluster() as cluster:  # the server the crash scenarios may kill: never a shared one
        crashes = {
            "campaign_database_kill": campaign_kill(leads, kill="database", cluster=cluster),
            "ingest_run_kill": ingest_crash("run", rows=leads * 10, cluster=cluster),
            "ingest_database_kill": ingest_crash("database", rows=leads * 10, cluster=cluster),
        }
    scenarios = {
        "provider_faults": provider_faults(leads),
        "provider_timeouts": provider_timeouts(max(100, leads // 4)),
        "campaign_kill": campaign_kill(leads),
        **crashes,
        "compliance": compliance(month_leads, step=timedelta(hours=1)),
        "gateway_load": gateway_load(),
    }
    return {
        "lost_rows": sum(s.get("lost_rows", 0) for s in scenarios.values()),
        "double_sends": sum(s.get("double_sends", 0) for s in scenarios.values()),
        "duplicate_leads": sum(s.get("duplicate_leads", 0) for s in scenarios.values()),
        "compliance_violations": sum(s.get("compliance_violations", 0) for s in scenarios.values()),
        **{key: scenarios["gateway_load"][key] for key in ("gateway_rps", "gateway_p99_ms", "gateway_errors",
                                                           "webhooks_accepted", "webhooks_in_inbox")},
        "seconds": round(time.perf_counter() - started, 1),
        "scenarios": scenarios,
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
