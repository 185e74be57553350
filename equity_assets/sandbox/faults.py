"""Fault injection in front of every vendor endpoint: latency, 5xx, 429, hangs."""

from __future__ import annotations

import asyncio

from fastapi.responses import Response

from equity_assets.sandbox.state import SandboxState
from equity_assets.sandbox.wire import problem

_SERVER_ERRORS = (500, 502, 503)


async def inject_fault(state: SandboxState, path: str) -> Response | None:
    """Sleep the configured latency, then maybe answer with a fault instead of the real handler.

    Returns the fault response, or ``None`` to let the request through. Latency uses
    ``asyncio.sleep`` so concurrent requests overlap as they would against a real service.
    """
    knobs = state.knobs_for(path)
    if knobs.latency_ms > 0:
        await asyncio.sleep(knobs.latency_ms / 1000.0)
    stats = state.stats
    if knobs.fail_next > 0:
        knobs.fail_next -= 1
        if knobs.fail_next_status == 429:
            return _throttle(state, knobs.retry_after_s, "sandbox: fail_next throttle")
        stats.injected_5xx += 1
        return problem(knobs.fail_next_status, "Server Error", "sandbox: fail_next fault")
    if knobs.timeout_rate > 0 and state.rng.random() < knobs.timeout_rate:
        stats.injected_timeouts += 1
        # Longer than the client's read timeout: the client gives up and (maybe) retries.
        await asyncio.sleep(knobs.timeout_s)
        return problem(504, "Gateway Timeout", "sandbox: timeout fault")
    if knobs.error_rate > 0 and state.rng.random() < knobs.error_rate:
        stats.injected_5xx += 1
        status = state.rng.choice(_SERVER_ERRORS)
        return problem(status, "Server Error", "sandbox: injected server error")
    if knobs.throttle_rate > 0 and state.rng.random() < knobs.throttle_rate:
        return _throttle(state, knobs.retry_after_s, "sandbox: injected throttle")
    return None


def _throttle(state: SandboxState, retry_after_s: int, detail: str) -> Response:
    state.stats.injected_429 += 1
    return problem(429, "Too Many Requests", detail, headers={"Retry-After": str(retry_after_s)})
