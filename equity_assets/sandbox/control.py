"""A thin client for the sandbox's ``/_sandbox/*`` routes (used by tests, benchmarks and the demo); stdlib only."""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

#: Seconds to wait for the sandbox's answer (it is local; anything slower is a bug).
DEFAULT_TIMEOUT_S = 30.0


class SandboxControl:
    """Inspect and steer a running sandbox at ``base_url``."""

    def __init__(self, base_url: str, *, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def stats(self) -> dict[str, Any]:
        """Counters: ``requests``, ``responses``, ``records``, ``throttled_429``, ``injected_5xx``, ..."""
        return self._call("GET", "/_sandbox/stats")

    def reset(self) -> None:
        """Forget received data and counters; fault knobs return to the start-up config."""
        self._call("POST", "/_sandbox/reset")

    def faults(self) -> dict[str, Any]:
        """Current fault knobs."""
        return self._call("GET", "/_sandbox/faults")

    def set_faults(
        self, *, path_faults: dict[str, dict[str, Any] | None] | None = None, **knobs: Any
    ) -> dict[str, Any]:
        """Change global knobs (only those given) and/or per-path overrides (``None`` removes one)."""
        body: dict[str, Any] = dict(knobs)
        if path_faults is not None:
            body["path_faults"] = path_faults
        return self._call("POST", "/_sandbox/faults", body)

    def campaign_leads(self, campaign_id: str) -> list[dict[str, Any]]:
        """Leads an Instantly campaign holds, each with its ``upload_count``."""
        return self._call("GET", f"/_sandbox/instantly/campaigns/{campaign_id}/leads")["leads"]

    def list_leads(self, list_id: str) -> list[dict[str, Any]]:
        """Leads an Instantly list holds, each with its ``upload_count``."""
        return self._call("GET", f"/_sandbox/instantly/lists/{list_id}/leads")["leads"]

    def webhook_deliveries(self) -> dict[str, Any]:
        """Instantly webhook delivery counters (``delivered``, ``failed``, ``pending``, ``by_type`` …)."""
        return self._call("GET", "/_sandbox/webhooks")

    def wait_for_webhooks(self, timeout_s: float = 60.0) -> dict[str, Any]:
        """Block until every queued webhook was delivered or given up; returns the counters."""
        deadline = time.monotonic() + timeout_s
        while True:
            counters = self.webhook_deliveries()
            if counters["pending"] == 0 or time.monotonic() > deadline:
                return counters
            time.sleep(0.1)

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """One JSON call; an error status raises ``urllib.error.HTTPError``."""
        request = urllib.request.Request(
            self.base_url + path,
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            return json.loads(response.read() or b"null")
