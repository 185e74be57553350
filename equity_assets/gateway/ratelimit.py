"""Per-client request limits, counted in PostgreSQL so several gateway processes share them.

Each client has one row holding a fixed window that opens at its first request and lasts
``window``; a single ``INSERT … ON CONFLICT DO UPDATE … RETURNING`` either bumps the count or
opens a new window, atomically, so concurrent requests from any process are all counted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

import psycopg

_HIT = """
INSERT INTO gateway_rate_limits AS r (client_key, window_start, hits, updated_at)
VALUES (%(key)s, now(), 1, now())
ON CONFLICT (client_key) DO UPDATE SET
    window_start = CASE WHEN r.window_start + %(window)s > now() THEN r.window_start ELSE now() END,
    hits         = CASE WHEN r.window_start + %(window)s > now() THEN r.hits + 1 ELSE 1 END,
    updated_at   = now()
RETURNING hits, extract(epoch FROM window_start + %(window)s - now())::float8
"""


@dataclass(frozen=True)
class RateDecision:
    """Outcome of counting one request."""

    allowed: bool
    hits: int  # requests in the current window, this one included
    retry_after_s: int  # seconds until the window resets (for Retry-After)
    first_rejection: bool  # the first request over the limit in this window


def count_request(conn: psycopg.Connection, client_key: str, *, limit: int, window: timedelta) -> RateDecision:
    """Count one request from ``client_key`` and say whether it is within ``limit`` per ``window``."""
    hits, remaining = conn.execute(_HIT, {"key": client_key, "window": window}).fetchone()
    return RateDecision(
        allowed=hits <= limit,
        hits=hits,
        retry_after_s=max(1, math.ceil(remaining)),
        first_rejection=hits == limit + 1,
    )


def prune_rate_limit_windows(conn: psycopg.Connection, older_than: timedelta = timedelta(days=1)) -> int:
    """Forget clients whose last window started more than ``older_than`` ago; returns rows removed."""
    cur = conn.execute("DELETE FROM gateway_rate_limits WHERE window_start < now() - %s", (older_than,))
    return cur.rowcount
