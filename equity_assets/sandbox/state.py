"""What a running sandbox remembers: counters, current fault knobs, and the leads Instantly received.

One :class:`SandboxState` lives on ``app.state.sandbox``. Handlers run on the server's single event
loop and never await between reading and writing this state, so it needs no locks.
"""

from __future__ import annotations

import math
import random
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from equity_assets.sandbox.config import FaultKnobs, SandboxConfig
from equity_assets.sandbox.instantly_webhooks import DeliveryStats, WebhookSender


@dataclass
class SandboxStats:
    """Counters the tests and benchmarks read back through ``GET /_sandbox/stats``."""

    requests: Counter[str] = field(default_factory=Counter)  # "POST /path" -> requests received
    responses: dict[str, Counter[str]] = field(default_factory=dict)  # "POST /path" -> status -> count
    records: Counter[str] = field(default_factory=Counter)  # melissa_records, batchdata_requests, instantly_leads
    injected_5xx: int = 0
    injected_429: int = 0
    injected_timeouts: int = 0
    rate_limited_429: int = 0  # real limiter (Instantly), not a random fault
    in_flight: Counter[str] = field(default_factory=Counter)  # requests being served now
    max_in_flight: Counter[str] = field(default_factory=Counter)  # high-water mark per endpoint

    def request_started(self, endpoint: str) -> None:
        """Count a request and track how many overlap (shows whether clients run concurrently)."""
        self.requests[endpoint] += 1
        self.in_flight[endpoint] += 1
        self.max_in_flight[endpoint] = max(self.max_in_flight[endpoint], self.in_flight[endpoint])

    def request_finished(self, endpoint: str, status: int | None) -> None:
        """Close a request started with :meth:`request_started`; ``status`` None if it crashed."""
        self.in_flight[endpoint] -= 1
        if status is not None:
            self.responses.setdefault(endpoint, Counter())[str(status)] += 1

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready snapshot."""
        return {
            "requests": dict(self.requests),
            "responses": {endpoint: dict(statuses) for endpoint, statuses in self.responses.items()},
            "records": dict(self.records),
            "max_in_flight": dict(self.max_in_flight),
            "throttled_429": self.injected_429 + self.rate_limited_429,
            "injected_429": self.injected_429,
            "rate_limited_429": self.rate_limited_429,
            "injected_5xx": self.injected_5xx,
            "injected_timeouts": self.injected_timeouts,
        }


class SlidingWindowLimiter:
    """At most ``limit`` accepted events in any ``window_s``-second window."""

    def __init__(self, limit: int, window_s: float) -> None:
        self.limit = limit
        self.window_s = window_s
        self._events: deque[float] = deque()

    def seconds_until_free(self, now: float) -> int:
        """0 if another event fits now, else whole seconds until one does (for ``Retry-After``)."""
        while self._events and now - self._events[0] >= self.window_s:
            self._events.popleft()
        if len(self._events) < self.limit:
            return 0
        return max(1, math.ceil(self._events[0] + self.window_s - now))

    def record(self, now: float) -> None:
        """Count one accepted event."""
        self._events.append(now)


@dataclass
class InstantlyWorkspace:
    """Leads Instantly accepted, per campaign/list, keyed by lower-cased email."""

    plan_leads: int
    targets: dict[tuple[str, str], dict[str, dict[str, Any]]] = field(default_factory=dict)
    uploaded_total: int = 0

    def leads_of(self, kind: str, target_id: str) -> dict[str, dict[str, Any]]:
        """The (mutable) lead store of one campaign or list."""
        return self.targets.setdefault((kind, target_id), {})

    def contains_anywhere(self, email: str) -> bool:
        """True if any campaign or list of the workspace holds ``email``."""
        return any(email in leads for leads in self.targets.values())

    @property
    def remaining_in_plan(self) -> int:
        return max(0, self.plan_leads - self.uploaded_total)


class SandboxState:
    """Mutable state of one sandbox server, rebuilt from its config by :meth:`reset`."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.webhooks = WebhookSender(config.seed)  # one delivery thread per server, kept across resets
        self.reset()

    def reset(self) -> None:
        """Forget everything received and restore the fault knobs the server started with."""
        config = self.config
        self.rng = random.Random(config.seed)
        self.faults = config.faults.model_copy(deep=True)
        self.path_faults = {path: knobs.model_copy(deep=True) for path, knobs in config.path_faults.items()}
        self.stats = SandboxStats()
        self.instantly = InstantlyWorkspace(plan_leads=config.instantly_plan_leads)
        self.vapi = None  # the VAPI simulator's calls, created on first use (sandbox.vapi)
        self._limiters: dict[str, tuple[SlidingWindowLimiter, SlidingWindowLimiter]] = {}
        self.webhooks.registrations.clear()
        self.webhooks.stats = DeliveryStats()

    def knobs_for(self, path: str) -> FaultKnobs:
        """The knobs in force on ``path``: its override if one is set, else the global knobs."""
        return self.path_faults.get(path, self.faults)

    def faults_as_dict(self) -> dict[str, Any]:
        """JSON-ready view of the current knobs."""
        return {
            **self.faults.model_dump(),
            "path_faults": {path: knobs.model_dump() for path, knobs in self.path_faults.items()},
        }

    def instantly_retry_after(self, api_key: str) -> int:
        """Apply Instantly's per-workspace limits: 0 to proceed, else seconds for ``Retry-After``."""
        limiters = self._limiters.get(api_key)
        if limiters is None:
            limiters = (
                SlidingWindowLimiter(self.config.instantly_rate_limit_per_s, 1.0),
                SlidingWindowLimiter(self.config.instantly_rate_limit_per_min, 60.0),
            )
            self._limiters[api_key] = limiters
        now = time.monotonic()
        wait = max(limiter.seconds_until_free(now) for limiter in limiters)
        if wait == 0:
            # Only accepted requests use up the budget, so a throttled client can recover.
            for limiter in limiters:
                limiter.record(now)
        return wait
