"""The broker portal: server-rendered pages under ``/portal``.

Login sets a signed, HttpOnly, SameSite=Strict session cookie (Secure over HTTPS or outside a local
environment). Every form carries an HMAC of the session (or, before login, of a login cookie);
a POST without it is refused with 403. Every page reads through ``as_broker``.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import re
import secrets
import uuid
from datetime import UTC, datetime
from urllib.parse import urlencode, urlsplit

import psycopg
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.concurrency import run_in_threadpool

from equity_assets.observe.events import Event, Stage, record_event
from equity_assets.security.notify import new_signing_secret

from . import charts, queries
from .access import as_broker
from .bodies import read_form
from .identity import (NotConfigured, check_login, close_session, csrf_ok, csrf_value, open_session,
                       session_broker)

log = logging.getLogger("equity_assets.gateway.portal")

SESSION_COOKIE = "ec_session"
LOGIN_COOKIE = "ec_login"
PAGE_SIZE = 25
_STATE = re.compile(r"[A-Z]{2}")

templates = Environment(loader=PackageLoader("equity_assets.gateway", "templates"),
                        autoescape=select_autoescape(default=True), auto_reload=False)

router = APIRouter(prefix="/portal")

_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "Referrer-Policy": "same-origin",
}


class LoginRequired(Exception):
    """No live session: the handler redirects to the login page."""


def _now() -> datetime:
    return datetime.now(UTC)


def _postgres(request: Request):
    return request.app.state.gateway.postgres


def _secure(request: Request) -> bool:
    return request.url.scheme == "https" or os.environ.get("EQUITY_ENV", "local") != "local"


def _render(request: Request, template: str, status: int = 200, *, binding: str | None = None,
            **context: object) -> HTMLResponse:
    binding = binding or request.cookies.get(SESSION_COOKIE)
    html = templates.get_template(f"portal/{template}").render(
        csrf_token=csrf_value(binding) if binding else "", path=request.url.path, **context)
    return HTMLResponse(html, status_code=status, headers=_HEADERS)


def _broker(request: Request) -> uuid.UUID:
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        raise LoginRequired
    with _postgres(request).connection() as conn:
        broker = session_broker(conn, cookie, _now())
    if broker is None:
        raise LoginRequired
    return broker


async def _session(request: Request) -> uuid.UUID:
    return await run_in_threadpool(_broker, request)


async def _checked_form(request: Request) -> dict[str, str] | None:
    """The form of a logged-in POST, or None when its CSRF value is missing or wrong."""
    form = await read_form(request)
    return form if csrf_ok(request.cookies.get(SESSION_COOKIE), form.get("csrf_token")) else None


def _forbidden(request: Request) -> HTMLResponse:
    return _render(request, "message.html", 403, title="Request refused",
                   message="This form could not be verified. Reload the page and try again.")


def _not_found(request: Request, me: dict | None = None) -> HTMLResponse:
    return _render(request, "message.html", 404, title="Not found", me=me,
                   message="There is nothing here. It may have moved, or the address may be mistyped.")


async def _read(request: Request, broker: uuid.UUID, fn, *args):
    """(the broker's own row, fn's answer), read in one transaction as the broker."""
    return await _run_as(request, broker, lambda conn: (queries.me(conn), fn(conn, *args)))


async def _run_as(request: Request, broker: uuid.UUID, fn, *args):
    def run():
        with as_broker(_postgres(request), broker) as conn:
            return fn(conn, *args)

    return await run_in_threadpool(run)


# --------------------------------------------------------------------------- login / logout


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request, error: str | None = None, status: int = 200) -> HTMLResponse:
    binding = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(24)
    response = _render(request, "login.html", status, binding=binding, title="Sign in", error=error)
    response.set_cookie(LOGIN_COOKIE, binding, httponly=True, samesite="strict", path="/portal",
                        secure=_secure(request), max_age=3600)
    return response


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    form = await read_form(request)
    if not csrf_ok(request.cookies.get(LOGIN_COOKIE), form.get("csrf_token")):
        return _forbidden(request)
    email, password = form.get("email", "")[:254], form.get("password", "")[:1024]

    def attempt():
        with _postgres(request).connection() as conn:
            result = check_login(conn, email, password, _now())
            record_event(conn, Event.BROKER_LOGIN if result.ok else Event.BROKER_LOGIN_FAILED, stage=Stage.PORTAL,
                         payload={"broker_id": str(result.broker_id) if result.ok else None,
                                  "locked": result.locked_until is not None})
            return result, (open_session(conn, result.broker_id, _now()) if result.ok else None)

    result, cookie = await run_in_threadpool(attempt)
    if cookie is None:
        message = ("Wrong e-mail or password." if result.locked_until is None else
                   "Too many failed attempts: sign-in is paused for this account. Try again in a few minutes.")
        return await login_form(request, error=message, status=401)
    response = RedirectResponse("/portal/", status_code=303, headers={"Cache-Control": "no-store"})
    response.set_cookie(SESSION_COOKIE, cookie, httponly=True, samesite="strict", path="/",
                        secure=_secure(request), max_age=12 * 3600)
    response.delete_cookie(LOGIN_COOKIE, path="/portal")
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    form = await _checked_form(request)
    if form is None:
        return _forbidden(request)

    def end():
        with _postgres(request).connection() as conn:
            close_session(conn, request.cookies.get(SESSION_COOKIE, ""))

    await run_in_threadpool(end)
    response = RedirectResponse("/portal/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# --------------------------------------------------------------------------- pages


@router.get("/", response_class=HTMLResponse)
async def dashboard(request: Request) -> HTMLResponse:
    broker = await _session(request)
    me, data = await _read(request, broker, queries.dashboard)
    return _render(request, "dashboard.html", title="Dashboard", me=me, data=data)


def _lead_filter(request: Request) -> tuple[queries.LeadFilter, dict[str, str]]:
    p = request.query_params
    status = p.get("status") if p.get("status") in queries.LEAD_STATUSES else None
    state = (p.get("state") or "").upper()
    state = state if _STATE.fullmatch(state) else None
    min_score = _number(p.get("min_score"))
    page = min(max(int(p["page"]) if (p.get("page") or "")[:6].isdigit() else 1, 1), 10_000)
    q = (p.get("q") or "").strip()[:100] or None
    kept = {k: v for k, v in {"status": status, "state": state, "q": q,
                              "min_score": p.get("min_score") if min_score is not None else None}.items() if v}
    return queries.LeadFilter(status=status, state=state, min_score=min_score, q=q, limit=PAGE_SIZE,
                              offset=(page - 1) * PAGE_SIZE), kept


def _number(raw: str | None) -> float | None:
    try:
        value = float(raw) if raw else None
    except ValueError:
        return None
    return value if value is not None and 0 <= value <= 100 else None


@router.get("/leads", response_class=HTMLResponse)
async def leads(request: Request) -> HTMLResponse:
    broker = await _session(request)
    f, kept = _lead_filter(request)
    me, (total, rows) = await _read(request, broker, queries.list_leads, f)
    page = f.offset // PAGE_SIZE + 1
    nav = {"prev": urlencode({**kept, "page": page - 1}) if page > 1 else None,
           "next": urlencode({**kept, "page": page + 1}) if f.offset + PAGE_SIZE < total else None}
    return _render(request, "leads.html", title="Leads", me=me, rows=rows, total=total, f=f, nav=nav,
                   statuses=queries.LEAD_STATUSES, page=page)


def _lead_detail(conn, lead_id):
    found = queries.lead(conn, lead_id)
    if found is None:
        return None
    return {"lead": found, "calls": queries.calls(conn, lead_id), "events": queries.billing_events(conn, lead_id),
            "audit": queries.consent_trail(conn, lead_id), "tokens": queries.consent_tokens(conn, lead_id)}


@router.get("/leads/{lead_id}", response_class=HTMLResponse)
async def lead_page(request: Request, lead_id: str, notice: str | None = None) -> HTMLResponse:
    broker = await _session(request)
    try:
        lead_uuid = uuid.UUID(lead_id)
    except ValueError:
        return _not_found(request)
    me, detail = await _read(request, broker, _lead_detail, lead_uuid)
    if detail is None:
        return _not_found(request, me)
    reported = {e["event_type"] for e in detail["events"]}
    return _render(request, "lead.html", title="Lead", me=me, notice=notice, reportable=[
        t for t in queries.REPORTABLE_EVENTS if t not in reported], **detail)


@router.post("/leads/{lead_id}/events", response_class=HTMLResponse)
async def report(request: Request, lead_id: str) -> Response:
    broker = await _session(request)
    form = await _checked_form(request)
    if form is None:
        return _forbidden(request)
    event_type = form.get("event_type")
    try:
        lead_uuid = uuid.UUID(lead_id)
    except ValueError:
        return _not_found(request)
    if event_type not in queries.REPORTABLE_EVENTS:
        return _render(request, "message.html", 400, title="Unknown event", message="Choose an event to report.")

    try:
        created = await _run_as(request, broker, queries.report_event, lead_uuid, broker, event_type, "portal")
    except psycopg.errors.InsufficientPrivilege:
        return _not_found(request)  # not this broker's lead: the same answer as no lead at all
    label = event_type.replace("_", " ")
    return await lead_page(request, lead_id, notice=f"Recorded: {label}." if created else f"Already recorded: {label}.")


@router.get("/analytics", response_class=HTMLResponse)
async def analytics(request: Request) -> HTMLResponse:
    broker = await _session(request)
    me, (funnel, weeks) = await _read(request, broker, lambda c: (queries.funnel(c), queries.weekly_conversion(c)))
    return _render(request, "analytics.html", title="Analytics", me=me, funnel=funnel, weeks=weeks,
                   funnel_svg=charts.funnel_svg(funnel), conversion_svg=charts.conversion_svg(weeks))


@router.get("/billing", response_class=HTMLResponse)
async def billing(request: Request) -> HTMLResponse:
    broker = await _session(request)
    me, (events, invoices) = await _read(request, broker, lambda c: (queries.billing_events(c), queries.invoices(c)))
    return _render(request, "billing.html", title="Billing", me=me, events=events, invoices=invoices)


def inert(value: object) -> str:
    """A CSV cell a spreadsheet will not run as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


@router.get("/billing.csv")
async def billing_csv(request: Request) -> Response:
    broker = await _session(request)
    _, invoices = await _read(request, broker, queries.invoices)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["month", "revision", "status", "event_type", "tier", "quantity", "unit_price", "amount",
                     "invoice_total"])
    for inv in invoices:
        for item in inv["line_items"]:
            writer.writerow([inert(v) for v in (inv["period_start"].strftime("%Y-%m"), inv["revision"], inv["status"],
                                                item["event_type"], item["tier"], item["quantity"], item["unit_price"],
                                                item["amount"], inv["total"])])
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="invoices.csv"', "Cache-Control": "no-store"})


@router.get("/consent", response_class=HTMLResponse)
async def consent(request: Request) -> HTMLResponse:
    broker = await _session(request)
    me, (audit, tokens) = await _read(request, broker, lambda c: (queries.consent_trail(c), queries.consent_tokens(c)))
    return _render(request, "consent.html", title="Consent", me=me, audit=audit, tokens=tokens)


def _settings_page(request: Request, broker: uuid.UUID, status: int = 200, **extra) -> HTMLResponse:
    with as_broker(_postgres(request), broker) as conn:
        me, log_rows, caps = queries.me(conn), queries.secret_log(conn), queries.cap_requests(conn)
    return _render(request, "settings.html", status, title="Settings", me=me, secret_log=log_rows, caps=caps, **extra)


@router.get("/settings", response_class=HTMLResponse)
async def settings(request: Request) -> HTMLResponse:
    broker = await _session(request)
    return await run_in_threadpool(_settings_page, request, broker)


def valid_notify_url(raw: str) -> bool:
    """https anywhere; plain http only to loopback (local development)."""
    parts = urlsplit(raw)
    if parts.scheme == "https" and parts.hostname:
        return True
    return parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1")


@router.post("/settings", response_class=HTMLResponse)
async def save_settings(request: Request) -> HTMLResponse:
    broker = await _session(request)
    form = await _checked_form(request)
    if form is None:
        return _forbidden(request)
    url = form.get("notify_url", "").strip()[:2000] or None
    if url and not valid_notify_url(url):
        return await run_in_threadpool(_settings_page, request, broker, 400,
                                       error="The webhook URL must start with https:// (or http://localhost for testing).")
    prefs = {"daily_summary": form.get("daily_summary") == "on", "appointment_alerts": form.get("appointment_alerts") == "on"}
    await _run_as(request, broker, queries.update_settings, broker, url, prefs)
    return await run_in_threadpool(_settings_page, request, broker, notice="Settings saved.")


@router.post("/settings/secret", response_class=HTMLResponse)
async def rotate_secret(request: Request) -> HTMLResponse:
    broker = await _session(request)
    if await _checked_form(request) is None:
        return _forbidden(request)
    fresh = new_signing_secret()
    await _run_as(request, broker, queries.rotate_secret, fresh)
    return await run_in_threadpool(_settings_page, request, broker, new_secret=fresh,
                                   notice="New signing secret created. The previous one keeps working for 24 hours.")


@router.post("/settings/cap", response_class=HTMLResponse)
async def cap_request(request: Request) -> HTMLResponse:
    broker = await _session(request)
    form = await _checked_form(request)
    if form is None:
        return _forbidden(request)
    raw = form.get("requested_cap", "")
    if not raw.isdigit() or not 0 <= int(raw) <= 5000:
        return await run_in_threadpool(_settings_page, request, broker, 400, error="Enter a whole number from 0 to 5000.")
    await _run_as(request, broker, queries.request_cap, broker, int(raw))
    return await run_in_threadpool(_settings_page, request, broker, notice="Request sent.")


async def handle_login_required(request: Request, exc: Exception) -> Response:
    return RedirectResponse("/portal/login", status_code=303, headers={"Cache-Control": "no-store"})


async def handle_not_configured(request: Request, exc: Exception) -> Response:
    log.error("portal is not configured: %s", exc)
    return HTMLResponse("<h1>Portal unavailable</h1><p>The portal is not configured.</p>", status_code=503)


EXCEPTION_HANDLERS = {LoginRequired: handle_login_required, NotConfigured: handle_not_configured}
