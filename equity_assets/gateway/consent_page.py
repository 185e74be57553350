"""The consent page a lead opens from the campaign e-mail: ``GET|POST /consent/{token}``.

Server-rendered (Jinja2, inline styles, no external assets or scripts), usable by keyboard and
screen reader, readable on a phone. States: the form (200), already used (409), expired (410),
damaged link (400), each a page a person can understand. ``POST`` is protected against
cross-site forgery with a double-submit cookie: a random value in an HttpOnly, SameSite=Strict
cookie, and in the form an HMAC of that value and the link, keyed with the consent secret — a
foreign site can neither read the cookie nor compute the form value.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import secrets
from datetime import UTC, datetime
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.concurrency import run_in_threadpool

from equity_assets.gateway import consent_capture as capture
from equity_assets.security.consent import consent_secret

from .errors import client_ip

log = logging.getLogger("equity_assets.gateway.consent")

CSRF_COOKIE = "consent_csrf"
MAX_FORM_BYTES = 16 * 1024
_USER_AGENT_CHARS = 512

templates = Environment(loader=PackageLoader("equity_assets.gateway", "templates"),
                        autoescape=select_autoescape(default=True), auto_reload=False)

router = APIRouter()

_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "Referrer-Policy": "no-referrer",
}

_MESSAGES = {
    "used": (409, "This link has already been used",
             ["Your answer was recorded the first time you used this link, so there is nothing more to do.",
              "If you want to withdraw a permission you gave, use the button below."]),
    "expired": (410, "This link has expired",
                ["For your security, links in our e-mails work for 7 days.",
                 "If you would still like a call, simply reply to the e-mail and we will send you a new link."]),
    "invalid": (400, "This link does not work",
                ["The link may have been cut short or changed when it was copied.",
                 "Please open it again straight from the e-mail, or reply to the e-mail for help."]),
    "forbidden": (403, "Please try again from the page",
                  ["Your answer could not be checked because the page was opened in another window or too long ago.",
                   "Please open the link from the e-mail again and submit the form there."]),
    "revoked": (200, "Your permission has been withdrawn",
                ["We will not call you about this. The change has been recorded.",
                 "You do not need to do anything else."]),
}


def _now() -> datetime:
    return datetime.now(UTC)


def _csrf_value(cookie: str, token: str) -> str:
    return hmac.new(consent_secret(), f"consent-csrf.v1.{cookie}.{token}".encode(), hashlib.sha256).hexdigest()


def _csrf_ok(request: Request, token: str, submitted: str) -> bool:
    cookie = request.cookies.get(CSRF_COOKIE, "")
    if not cookie or not submitted:
        return False
    return hmac.compare_digest(submitted.encode(), _csrf_value(cookie, token).encode())


def _render(request: Request, template: str, status: int, *, token: str, cookie: str | None = None,
            **context: object) -> HTMLResponse:
    cookie = cookie or request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(24)
    html = templates.get_template(f"consent/{template}").render(csrf_token=_csrf_value(cookie, token), **context)
    response = HTMLResponse(html, status_code=status, headers=_HEADERS)
    response.set_cookie(CSRF_COOKIE, cookie, httponly=True, samesite="strict", path="/consent",
                        secure=request.url.scheme == "https", max_age=3600)
    return response


def _message(request: Request, token: str, state: str, *, offer_revocation: bool = False) -> HTMLResponse:
    status, title, lines = _MESSAGES[state]
    return _render(request, "message.html", status, token=token, title=title, lines=lines,
                   revoke_action=f"/consent/{token}/revoke" if offer_revocation else None)


def _connection(request: Request):
    return request.app.state.gateway.connection()


def _ip(request: Request) -> str | None:
    try:
        return str(ipaddress.ip_address(client_ip(request) or ""))
    except ValueError:
        return None


async def _form(request: Request) -> dict[str, str]:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return {}
    fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=20)
    return {k: v[0] for k, v in fields.items()}


def _load(request: Request, token: str) -> capture.ConsentPage:
    with _connection(request) as conn:
        return capture.load_page(conn, token, now=_now())


@router.get("/consent/{token}", response_class=HTMLResponse)
async def consent_form(request: Request, token: str) -> HTMLResponse:
    """The consent form, or a page explaining why the link cannot be used."""
    page = await run_in_threadpool(_load, request, token)
    if page.state != "open":
        return _message(request, token, page.state, offer_revocation=page.state == "used")
    return _render(request, "form.html", 200, token=token, title="Permission to call", page=page,
                   action=f"/consent/{token}", phone_value=capture.display_phone(page.phone),
                   phone_error=None, form_error=None)


@router.post("/consent/{token}", response_class=HTMLResponse)
async def submit_consent(request: Request, token: str) -> HTMLResponse:
    """Verify and consume the link and record the consent in one transaction."""
    form = await _form(request)
    if not _csrf_ok(request, token, form.get("csrf_token", "")):
        return _message(request, token, "forbidden")
    page = await run_in_threadpool(_load, request, token)
    if page.state != "open":
        return _message(request, token, page.state, offer_revocation=page.state == "used")
    phone_error = form_error = None
    try:
        phone = capture.normalize_phone(form.get("phone", ""))
    except capture.PhoneError as exc:
        phone, phone_error = None, str(exc)
    if form.get("agree") != "yes":
        form_error = "Please tick the box to show you agree, or simply close this page if you do not."
    version = form.get("disclosure_version", "")
    if phone_error or form_error or version != page.disclosure_version:
        return _render(request, "form.html", 400, token=token, title="Permission to call", page=page,
                       action=f"/consent/{token}", phone_value=form.get("phone", "")[:32],
                       phone_error=phone_error, form_error=form_error or (
                           None if version == page.disclosure_version else
                           "The wording on this page changed while it was open. Please read it again and agree."))
    user_agent = request.headers.get("user-agent", "")[:_USER_AGENT_CHARS] or None

    def record() -> capture.ConsentDecision:
        with _connection(request) as conn:
            return capture.record_consent(conn, token, phone=phone, disclosure_version=version, now=_now(),
                                          ip=_ip(request), user_agent=user_agent)

    decision = await run_in_threadpool(record)
    if not decision.accepted:
        state = {"already_used": "used", "expired": "expired"}.get(decision.reason, "invalid")
        log.info("consent refused: reason=%s", decision.reason)
        return _message(request, token, state, offer_revocation=state == "used")
    log.info("consent recorded: lead=%s", decision.lead_id)
    return _render(request, "done.html", 200, token=token, title="Thank you", broker_name=page.broker_name,
                   phone=capture.display_phone(phone), revoke_action=f"/consent/{token}/revoke")


@router.post("/consent/{token}/revoke", response_class=HTMLResponse)
async def revoke_consent(request: Request, token: str) -> HTMLResponse:
    """One click withdraws the permission given through this link (audited)."""
    form = await _form(request)
    if not _csrf_ok(request, token, form.get("csrf_token", "")):
        return _message(request, token, "forbidden")
    user_agent = request.headers.get("user-agent", "")[:_USER_AGENT_CHARS] or None

    def revoke() -> bool:
        with _connection(request) as conn:
            return capture.revoke_by_link(conn, token, now=_now(), ip=_ip(request), user_agent=user_agent)

    revoked = await run_in_threadpool(revoke)
    return _message(request, token, "revoked" if revoked else "invalid")
