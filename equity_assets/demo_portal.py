"""The demo's broker part: a demo broker signs in to the portal (real HTTP, CSRF and all), reports an
application, the month's invoices are built, and the demo prints how to sign in afterwards."""

from __future__ import annotations

import re
import secrets

import dagster as dg
import requests

from .gateway.portal import accounts

DEMO_EMAIL = "demo.west@equity.example"
DEMO_BROKER = "Demo Broker West"
PORTAL_URL = "http://127.0.0.1:8080/portal/"
_CSRF = re.compile(r'name="csrf_token" value="([0-9a-f]{64})"')


def demo_login(postgres) -> str:
    """Give the demo broker an e-mail and a fresh password; returns the password."""
    password = secrets.token_urlsafe(12)
    with postgres.connection() as conn:
        conn.execute("UPDATE brokers SET email = %s WHERE name = %s AND email IS NULL", (DEMO_EMAIL, DEMO_BROKER))
        accounts.set_password(conn, DEMO_EMAIL, password)
    return password


def report_through_portal(gateway_url: str, password: str) -> bool:
    """Sign in as the demo broker and report an application on their best lead, as a browser would."""
    s = requests.Session()
    token = _CSRF.search(s.get(f"{gateway_url}/portal/login", timeout=10).text).group(1)
    s.post(f"{gateway_url}/portal/login", data={"email": DEMO_EMAIL, "password": password, "csrf_token": token},
           timeout=10)
    leads = s.get(f"{gateway_url}/portal/leads", timeout=10)
    first = re.search(r'href="/portal/leads/([0-9a-f-]{36})"', leads.text)
    if leads.status_code != 200 or first is None:
        print("portal: the demo broker has no leads to report on")
        return leads.status_code == 200
    page = s.get(f"{gateway_url}/portal/leads/{first.group(1)}", timeout=10)
    answer = s.post(f"{gateway_url}/portal/leads/{first.group(1)}/events",
                    data={"event_type": "application_submitted", "csrf_token": _CSRF.search(page.text).group(1)},
                    timeout=10)
    print(f"portal: demo broker signed in and reported an application ({answer.status_code})")
    return answer.status_code == 200


def run_billing(defs: dg.Definitions, instance: dg.DagsterInstance, postgres) -> bool:
    from .billing.assets import monthly

    month = monthly.get_last_partition_key()
    result = defs.resolve_job_def("billing_invoices_job").execute_in_process(
        instance=instance, partition_key=month, raise_on_error=False)
    with postgres.connection() as conn:
        rows = conn.execute("SELECT b.name, i.revision, i.event_count, i.total FROM invoices i "
                            "JOIN brokers b ON b.id = i.broker_id WHERE i.period_start = %s ORDER BY b.name",
                            (month,)).fetchall()
    print(f"billing_invoices_job [{month}]: {'ok' if result.success else 'FAILED'}")
    for name, revision, events, total in rows:
        print(f"  {name:<24} rev {revision}  {events:>3} event(s)  ${total}")
    return result.success


def print_login(password: str) -> None:
    print("\nbroker portal: start it with `EQUITY_SESSION_SECRET=<32+ random chars> equity gateway`, then open "
          f"{PORTAL_URL}")
    print(f"  login: {DEMO_EMAIL}  password: {password}")
