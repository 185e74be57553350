"""Simulated Instantly API v2 bulk lead upload: ``POST /api/v2/leads/add``.

Leads added to a campaign trigger the registered webhooks (see ``instantly_webhooks``).

Bearer key, per-workspace rate limit (429 + ``Retry-After``), exactly one of ``campaign_id`` /
``list_id``, at most 1,000 leads per call, ``skip_if_in_campaign`` / ``skip_if_in_workspace``
honoured. Every accepted lead is kept so tests can see what actually reached "Instantly".
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from equity_assets.sandbox.dice import Dice
from equity_assets.sandbox.normalize import is_plausible_email, normalize_email
from equity_assets.sandbox.state import InstantlyWorkspace, SandboxState
from equity_assets.sandbox.wire import MalformedBody, bearer_token, json_response, read_json_object

PATH = "/api/v2/leads/add"
MAX_LEADS = 1000
_LEAD_FIELDS = ("first_name", "last_name", "company_name", "personalization", "phone", "website")

router = APIRouter()


@router.post(PATH)
async def add_leads(request: Request) -> Response:
    """Bulk-add leads to a campaign or list."""
    state: SandboxState = request.app.state.sandbox
    api_key = bearer_token(request)
    if api_key != state.config.instantly_api_key:
        return _error(401, "Unauthorized", "Invalid API key")
    wait = state.instantly_retry_after(api_key)
    if wait:
        state.stats.rate_limited_429 += 1
        return _error(429, "Too Many Requests", "Rate limit exceeded", headers={"Retry-After": str(wait)})
    try:
        payload = await read_json_object(request)
    except MalformedBody as exc:
        return _error(400, "Bad Request", str(exc))
    problem = _validation_problem(payload)
    if problem:
        return _error(400, "Bad Request", problem)
    leads: list[dict[str, Any]] = payload["leads"]
    state.stats.records["instantly_leads"] += len(leads)
    answer = _store_leads(state.instantly, payload, leads, seed=state.config.seed)
    if payload.get("campaign_id"):
        state.webhooks.leads_pushed(payload["campaign_id"], answer["created_leads"])
    return json_response(answer)


def _validation_problem(payload: dict[str, Any]) -> str:
    """Why the payload is rejected, or ``""``."""
    has_campaign = bool(payload.get("campaign_id"))
    has_list = bool(payload.get("list_id"))
    if has_campaign == has_list:
        return "exactly one of campaign_id or list_id is required"
    target = payload.get("campaign_id") or payload.get("list_id")
    if not isinstance(target, str):
        return "campaign_id / list_id must be a string"
    leads = payload.get("leads")
    if not isinstance(leads, list) or not leads:
        return "leads must be a non-empty array"
    if len(leads) > MAX_LEADS:
        return f"leads must contain at most {MAX_LEADS} items, got {len(leads)}"
    if not all(isinstance(lead, dict) for lead in leads):
        return "each lead must be an object"
    return ""


def _store_leads(
    workspace: InstantlyWorkspace, payload: dict[str, Any], leads: list[dict[str, Any]], *, seed: int
) -> dict[str, Any]:
    """Apply one upload to the workspace and build the response counts."""
    if payload.get("campaign_id"):
        kind, target_id = "campaign", payload["campaign_id"]
    else:
        kind, target_id = "list", payload["list_id"]
    stored = workspace.leads_of(kind, target_id)
    skip_in_campaign = bool(payload.get("skip_if_in_campaign", False))
    skip_in_workspace = bool(payload.get("skip_if_in_workspace", False))
    seen: set[str] = set()
    created: list[dict[str, Any]] = []
    invalid = duplicate = already_in_campaign = in_workspace = 0
    for index, lead in enumerate(leads):
        email = normalize_email(lead.get("email"))
        if not is_plausible_email(email):
            invalid += 1
            continue
        if email in seen:
            duplicate += 1
            continue
        seen.add(email)
        if skip_in_campaign and email in stored:
            already_in_campaign += 1
            continue
        if skip_in_workspace and workspace.contains_anywhere(email):
            in_workspace += 1
            continue
        record = stored.get(email)
        if record is None:
            record = {"id": str(uuid.UUID(int=Dice(seed, "instantly-lead", kind, target_id, email).big(), version=4))}
            stored[email] = record
            record["upload_count"] = 0
        record.update(_lead_fields(lead, email))
        record["upload_count"] += 1
        workspace.uploaded_total += 1
        created.append({"id": record["id"], "email": email, "index": index})
    return {
        "status": "success",
        "total_sent": len(leads),
        "leads_uploaded": len(created),
        "already_in_campaign": already_in_campaign,
        "skipped_count": already_in_campaign + in_workspace,
        "invalid_email_count": invalid,
        "duplicate_email_count": duplicate,
        "in_blocklist": 0,
        "remaining_in_plan": workspace.remaining_in_plan,
        "created_leads": created,
    }


def _lead_fields(lead: dict[str, Any], email: str) -> dict[str, Any]:
    """The lead as Instantly keeps it."""
    fields: dict[str, Any] = {"email": email}
    for name in _LEAD_FIELDS:
        if lead.get(name) is not None:
            fields[name] = lead[name]
    if isinstance(lead.get("custom_variables"), dict):
        fields["custom_variables"] = lead["custom_variables"]
    return fields


def _error(status: int, error: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return json_response({"statusCode": status, "error": error, "message": message}, status=status, headers=headers)
