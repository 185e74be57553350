"""``/_sandbox/*``: what tests and benchmarks use to inspect and steer a running sandbox.

These routes are never faulted and never counted in the vendor statistics.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError

from equity_assets.sandbox.config import FaultKnobs
from equity_assets.sandbox.state import SandboxState
from equity_assets.sandbox.wire import MalformedBody, json_response, problem, read_json_object

PREFIX = "/_sandbox"

router = APIRouter(prefix=PREFIX)


def _state(request: Request) -> SandboxState:
    return request.app.state.sandbox


@router.get("/health")
async def health() -> Response:
    """Liveness probe."""
    return json_response({"status": "ok"})


@router.get("/stats")
async def stats(request: Request) -> Response:
    """Requests per endpoint, statuses, records received, injected faults, rate-limit refusals."""
    return json_response(_state(request).stats.as_dict())


@router.post("/reset")
async def reset(request: Request) -> Response:
    """Forget received data and counters; fault knobs go back to the start-up config."""
    _state(request).reset()
    return json_response({"status": "reset"})


@router.get("/faults")
async def get_faults(request: Request) -> Response:
    """Current fault knobs."""
    return json_response(_state(request).faults_as_dict())


@router.post("/faults")
async def set_faults(request: Request) -> Response:
    """Change fault knobs at runtime.

    Body: any global knob (``latency_ms``, ``error_rate``, ``throttle_rate``, ``retry_after_s``,
    ``timeout_rate``, ``timeout_s``, ``fail_next``, ``fail_next_status``) - only those given
    change - and optionally
    ``path_faults: {"<path>": {knobs} | null}`` where an object replaces that path's override and
    ``null`` removes it.
    """
    state = _state(request)
    try:
        body = await read_json_object(request)
        path_faults: dict[str, Any] = body.pop("path_faults", None) or {}
        updated = FaultKnobs.model_validate({**state.faults.model_dump(), **body})
        overrides = {path: FaultKnobs.model_validate(knobs) for path, knobs in path_faults.items() if knobs is not None}
    except (MalformedBody, ValidationError, AttributeError) as exc:
        return problem(400, "Bad Request", str(exc))
    state.faults = updated
    for path, knobs in path_faults.items():
        if knobs is None:
            state.path_faults.pop(path, None)
        else:
            state.path_faults[path] = overrides[path]
    return json_response(state.faults_as_dict())


@router.get("/instantly/campaigns/{campaign_id}/leads")
async def campaign_leads(campaign_id: str, request: Request) -> Response:
    """Every lead the campaign accepted, with how many times each was uploaded."""
    return _leads_response(_state(request), "campaign", campaign_id)


@router.get("/instantly/lists/{list_id}/leads")
async def list_leads(list_id: str, request: Request) -> Response:
    """Every lead the list accepted, with how many times each was uploaded."""
    return _leads_response(_state(request), "list", list_id)


def _leads_response(state: SandboxState, kind: str, target_id: str) -> Response:
    leads = list(state.instantly.targets.get((kind, target_id), {}).values())
    return json_response({f"{kind}_id": target_id, "count": len(leads), "leads": leads})


@router.get("/webhooks")
async def webhook_deliveries(request: Request) -> Response:
    """Instantly webhook deliveries: queued, delivered, failed, retries, pending, per event type."""
    sender = _state(request).webhooks
    return json_response({**sender.stats.as_dict(sender.pending), "registrations": len(sender.registrations)})
