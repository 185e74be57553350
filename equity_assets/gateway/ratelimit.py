"""Per-client request limits, counted in PostgreSQL so several gateway processes share them.

Each client has one row holding a fixed window that opens at its first request and lasts
``window``; a single ``INSERT … ON CONFLICT DO UPDATE … RETURNING`` either adds to the count or
opens a new window, atomically, so concurrent requests from any process are all counted.

Uploads count every request in the row (they are few and each costs a file write anyway).
Webhooks arrive by the thousand per second from a few provider addresses, so ``SharedRateLimiter``
counts them in the process and settles with the shared row in batches: a database round trip per
batch, not per request, and still one budget for all the gateway's worker processes.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import timedelta

import psycopg

_HIT = """
INSERT INTO gateway_rate_limits AS r (client_key, window_start, hits, updated_at)
VALUES (%(key)s, now(), %(n)s, now())
ON CONFLICT (client_key) DO UPDATE SET
    window_start = CASE WHEN r.window_start + %(window)s > now() THEN r.window_start ELSE now() END,
    hits         = CASE WHEN r.window_start + %(window)s > now() THEN r.hits + %(n)s ELSE %(n)s END,
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


def add_hits(conn: psycopg.Connection, client_key: str, n: int, window: timedelta) -> tuple[int, float]:
    """Add ``n`` requests to the client's shared window: (hits in the window now, seconds left in it)."""
    hits, remaining = conn.execute(_HIT, {"key": client_key, "n": n, "window": window}).fetchone()
    return hits, remaining


async def add_hits_async(conn: psycopg.AsyncConnection, client_key: str, n: int,
                         window: timedelta) -> tuple[int, float]:
    """``add_hits`` in a transaction of its own that does not wait for the WAL flush.

    A count lost in a crash only lets a few more requests through; waiting for the disk while
    holding the client's row lock would serialize its requests on it.
    """
    async with conn.transaction():
        await conn.execute("SET LOCAL synchronous_commit = off")
        cur = await conn.execute(_HIT, {"key": client_key, "n": n, "window": window})
        hits, remaining = await cur.fetchone()
    return hits, remaining


def count_request(conn: psycopg.Connection, client_key: str, *, limit: int, window: timedelta) -> RateDecision:
    """Count one request from ``client_key`` and say whether it is within ``limit`` per ``window``."""
    hits, remaining = add_hits(conn, client_key, 1, window)
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


@dataclass
class _Tally:
    shared: int = 0  # the client's count in the shared row at the last settlement (every process)
    pending: int = 0  # counted here since then, not yet added to the shared row
    settled_at: float = -math.inf  # monotonic clock
    resets_at: float = -math.inf  # monotonic moment the shared window ends


class SharedRateLimiter:
    """One limit per client for every gateway process, settled with the database in batches.

    A process counts requests locally and adds them to the client's shared row when ``batch`` have
    piled up, when ``settle_every_s`` has passed, when the window has ended, and on every request
    once the client is within an eighth of its remaining budget — so small limits are exact and a
    large one is overshot by at most a few batches across processes. A client already over its
    limit is refused locally until its window ends: a flood costs no database writes.
    """

    MAX_CLIENTS = 10_000  # beyond this, clients whose window has ended are forgotten

    def __init__(self, key_prefix: str, *, limit: int, window: timedelta, batch: int = 64,
                 settle_every_s: float = 0.2, clock: Callable[[], float] = time.monotonic) -> None:
        self.key_prefix = key_prefix
        self.limit = limit
        self.window = window
        self.batch = batch
        self.settle_every_s = settle_every_s
        self._clock = clock
        self._lock = threading.Lock()
        self._tallies: dict[str, _Tally] = {}

    async def hit(self, client: str,
                  connection: Callable[[], AbstractAsyncContextManager[psycopg.AsyncConnection]]) -> RateDecision:
        """Count one request of ``client``; ``connection`` is only opened when the count is settled."""
        now = self._clock()
        with self._lock:
            if client not in self._tallies and len(self._tallies) >= self.MAX_CLIENTS:
                self._tallies = {c: t for c, t in self._tallies.items() if t.resets_at > now}
            tally = self._tallies.setdefault(client, _Tally())
            expired = now >= tally.resets_at
            if expired:
                # Hits counted here in a window that has ended belong to it, not to the next one;
                # until the settlement answers, assume a new window (the database corrects both).
                tally.shared, tally.pending = 0, 0
                tally.resets_at = now + self.window.total_seconds()
            tally.pending += 1
            if not expired and (tally.shared > self.limit or not self._settle_due(tally, now)):
                return self._decide(tally.shared + tally.pending, tally.resets_at - now, 1)
            # Claimed now, so the requests arriving while this settles do not start settlements of their own.
            n, tally.pending, tally.settled_at = tally.pending, 0, now
        async with connection() as conn:
            hits, remaining = await add_hits_async(conn, f"{self.key_prefix}{client}", n, self.window)
        with self._lock:
            tally.shared, tally.resets_at = hits, self._clock() + remaining
            return self._decide(hits + tally.pending, remaining, n + tally.pending)

    def _settle_due(self, tally: _Tally, now: float) -> bool:
        close_to_limit = max(1, min(self.batch, (self.limit - tally.shared) // 8))
        return tally.pending >= close_to_limit or now - tally.settled_at >= self.settle_every_s

    def _decide(self, hits: int, remaining_s: float, just_added: int) -> RateDecision:
        # The first refusal is the request that carried the count over the limit.
        return RateDecision(allowed=hits <= self.limit, hits=hits, retry_after_s=max(1, math.ceil(remaining_s)),
                            first_rejection=hits - just_added <= self.limit < hits)
