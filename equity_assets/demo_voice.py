"""The demo's voice leg: some campaign recipients reply and sign the consent form, then they are called.

Everything goes the way production traffic would: each "person" posts an Instantly reply webhook to
the gateway and fills in the consent page behind the link their e-mail carried (GET for the form and
its CSRF token, POST to agree); `email_replies` classifies the replies; `voice_calls` gates and
places the calls through the sandbox's VAPI; the sandbox posts its signed status updates and
end-of-call reports back to the gateway; `call_outcomes` applies them.

The demo runs whenever it is started, but calls may only be placed inside calling hours. So the
gate judges the demo's calls at the next Monday–Saturday 19:00 UTC (afternoon from New York to
Hawaii) — said on screen — instead of the wall clock. Nothing else about the gate changes.
"""

from __future__ import annotations

import json
import re
import time
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

import dagster as dg
import requests

DEMO_CALLERS = 40
INSTANTLY_HEADER = "x-equity-webhook-secret"
# One local number per territory state of the demo brokers (area code of the state).
AREA_CODES = {"CA": "213", "AZ": "602", "NV": "702", "WA": "206", "OR": "503", "UT": "801", "CO": "303",
              "TX": "512", "FL": "305", "GA": "404", "TN": "615", "NC": "919", "SC": "803", "AL": "205",
              "NY": "212", "NJ": "201", "CT": "203", "MA": "617", "PA": "215", "NH": "603", "OH": "614",
              "IL": "312", "MI": "313"}
REPLY = "Yes, I am interested. Please call me to talk about my options."


def demo_moment(now: datetime) -> datetime:
    """The next Monday–Saturday 19:00 UTC after ``now``."""
    moment = now.astimezone(timezone.utc).replace(hour=19, minute=0, second=0, microsecond=0)
    if moment <= now:
        moment += timedelta(days=1)
    while moment.weekday() == 6:
        moment += timedelta(days=1)
    return moment


def seed_number_pools(postgres) -> int:
    """Every demo broker gets a number in each of its states (added once)."""
    with postgres.connection() as conn:
        return conn.execute(
            """INSERT INTO broker_phone_numbers (broker_id, e164, state, vapi_phone_number_id)
               SELECT b.id, '+1' || ac.code || '555' || lpad((row_number() OVER (ORDER BY b.id, s))::text, 4, '0'),
                      s, 'demo-pn-' || s || '-' || left(b.id::text, 8)
               FROM brokers b CROSS JOIN LATERAL unnest(b.territory_states) s
               JOIN (SELECT key AS st, value AS code FROM jsonb_each_text(%s::jsonb)) ac ON ac.st = s
               WHERE b.name LIKE 'Demo Broker %%'
                 AND NOT EXISTS (SELECT 1 FROM broker_phone_numbers n WHERE n.broker_id = b.id AND n.state = s)""",
            (json.dumps(AREA_CODES),),
        ).rowcount


def pick_people(postgres, count: int) -> list[tuple[str, str, str]]:
    """(email, phone, consent token) of campaign recipients who have a verified phone."""
    with postgres.connection() as conn:
        rows = conn.execute(
            """SELECT l.email, l.phone, l.id::text FROM campaign_sends cs JOIN leads l ON l.id = cs.lead_id
               WHERE cs.status = 'pushed' AND l.phone_verified AND l.phone IS NOT NULL AND NOT l.consent
                 AND l.campaign_status = 'active'
               ORDER BY l.lead_score DESC NULLS LAST, l.id LIMIT %s""",
            (count * 3,),
        ).fetchall()
    return [(email, phone, lead_id) for email, phone, lead_id in rows]


def consent_tokens(sandbox_url: str, campaign_ids: list[str]) -> dict[str, str]:
    """email → the consent token in the link the campaign e-mail carried (as Instantly stored it)."""
    from .sandbox import SandboxControl

    control = SandboxControl(sandbox_url)
    tokens = {}
    for campaign in campaign_ids:
        for lead in control.campaign_leads(campaign):
            url = (lead.get("custom_variables") or {}).get("consent_url")
            if url:
                tokens[lead["email"]] = urlsplit(url).path.rsplit("/", 1)[-1]
    return tokens


def reply_and_consent(gateway_url: str, instantly_secret: str, email: str, phone: str, token: str) -> bool:
    """One person: an interested reply, then the consent form behind their link. True when both landed."""
    reply = {"timestamp": datetime.now(timezone.utc).isoformat(), "event_type": "reply_received",
             "workspace": "demo", "campaign_id": "demo-campaign", "lead_email": email,
             "reply_subject": "Re: your home's equity", "reply_text": REPLY}
    answer = requests.post(f"{gateway_url}/v1/webhooks/instantly", json=reply,
                           headers={INSTANTLY_HEADER: instantly_secret}, timeout=10)
    if answer.status_code != 200:
        return False
    session = requests.Session()
    page = session.get(f"{gateway_url}/consent/{token}", timeout=10)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    version = re.search(r'name="disclosure_version" value="([^"]+)"', page.text)
    if page.status_code != 200 or not csrf or not version:
        return False
    done = session.post(f"{gateway_url}/consent/{token}", timeout=10,
                        data={"csrf_token": csrf.group(1), "disclosure_version": version.group(1), "phone": phone,
                              "agree": "yes"})
    return done.status_code == 200


def wait_for_reports(postgres, calls: int, timeout_s: float = 60.0) -> int:
    """Wait until the gateway has stored an end-of-call report for each placed call."""
    deadline = time.monotonic() + timeout_s
    while True:
        with postgres.connection() as conn:
            got = conn.execute("""SELECT count(DISTINCT payload->'message'->'call'->>'id') FROM webhook_events
                                  WHERE provider = 'vapi' AND event_type = 'end-of-call-report'
                                    AND status = 'pending'""").fetchone()[0]
        if got >= calls or time.monotonic() > deadline:
            return got
        time.sleep(0.25)


def run_voice(defs: dg.Definitions, instance: dg.DagsterInstance, *, sandbox_url: str, gateway_url: str,
              instantly_secret: str, run_job) -> bool:
    """Replies and consent → email_replies → voice_calls → (VAPI messages) → call_outcomes."""
    from .voice import assets as voice_assets

    postgres = defs.resources["postgres"]
    print(f"number pools: {seed_number_pools(postgres)} new demo number(s)")
    with postgres.connection() as conn:
        campaigns = [r[0] for r in conn.execute(
            "SELECT DISTINCT instantly_campaign_id FROM brokers WHERE instantly_campaign_id IS NOT NULL")]
    tokens = consent_tokens(sandbox_url, campaigns)
    people = [(e, p) for e, p, _ in pick_people(postgres, DEMO_CALLERS) if e in tokens][:DEMO_CALLERS]
    consented = sum(reply_and_consent(gateway_url, instantly_secret, e, p, tokens[e]) for e, p in people)
    print(f"people: {len(people)} replied with interest, {consented} signed the consent form")
    ok = run_job(defs, instance, "email_replies_job")
    moment = demo_moment(datetime.now(timezone.utc))
    print(f"demo clock for the compliance gate: {moment.isoformat()} (calls are only placed in calling hours)")
    real_clock = voice_assets.utc_now
    voice_assets.utc_now = lambda: moment
    try:
        ok = run_job(defs, instance, "voice_calls_job") and ok
    finally:
        voice_assets.utc_now = real_clock
    with postgres.connection() as conn:
        placed = conn.execute("SELECT count(*) FROM calls WHERE vapi_call_id IS NOT NULL AND status <> 'ended'"
                              ).fetchone()[0]
    reports = wait_for_reports(postgres, placed)
    print(f"calls: {placed} placed, {reports} end-of-call report(s) received by the gateway")
    return run_job(defs, instance, "call_outcomes_job") and ok
