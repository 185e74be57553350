"""An asyncio connection pool for the webhook hot path.

Webhooks arrive by the thousand per second; each is one INSERT. Running it on the event loop
saves the thread hop (and the GIL contention between threads) that the blocking pool costs, and
autocommit makes the INSERT its own durable transaction in one round trip instead of three
(BEGIN, INSERT, COMMIT).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from equity_assets.db.resources import PostgresResource


# Planning the hot statements once per connection loads the catalog entries they need, so the
# first requests a new server process serves do not pay for that.
_WARM_UP = (
    "SELECT id FROM webhook_events WHERE provider = 'warm-up' AND event_key = 'warm-up'",
    "SELECT hits FROM gateway_rate_limits WHERE client_key = 'warm-up'",
)

log = logging.getLogger("equity_assets.gateway")


class AsyncPool:
    """A fixed-size pool (as the same role as ``postgres``'s pool), opened and warmed by ``open``
    when the gateway starts, or on first use if the database was not reachable then.

    Fixed size because a pool that grows under a burst opens connections (a server process and a
    SCRAM handshake each) exactly when requests are queueing: the first second of load at
    1,000 req/s waited ~300 ms on that.
    """

    def __init__(self, postgres: PostgresResource, max_size: int) -> None:
        self._postgres = postgres
        self._max_size = max_size
        self._pool: AsyncConnectionPool | None = None
        self._opening = asyncio.Lock()

    async def _configure(self, conn: psycopg.AsyncConnection) -> None:
        await conn.execute("SELECT set_config('application_name', %s, false)",
                           (f"{self._postgres.application_name}_async",))
        if self._postgres.role:
            await conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(self._postgres.role)))
        for statement in _WARM_UP:
            try:
                await conn.execute(statement)
            except (psycopg.errors.UndefinedTable, psycopg.errors.InsufficientPrivilege):
                pass  # a database not migrated yet: the requests will say so

    async def _open(self, timeout_s: float = 30.0) -> AsyncConnectionPool:
        async with self._opening:
            if self._pool is None:
                pool = AsyncConnectionPool(self._postgres.resolved_dsn(), min_size=self._max_size,
                                           max_size=self._max_size,
                                           kwargs={"autocommit": True}, configure=self._configure, open=False,
                                           name="equity_async")
                try:
                    await pool.open(wait=True, timeout=timeout_s)
                except BaseException:
                    await pool.close()
                    raise
                self._pool = pool
            return self._pool

    async def open(self, timeout_s: float = 5.0) -> bool:
        """Open and warm every connection before traffic arrives. If the database does not answer in
        time the gateway starts anyway (health says degraded) and the pool opens on first use."""
        try:
            await self._open(timeout_s)
        except psycopg.Error as exc:  # PoolTimeout included
            log.warning("database pool not ready at start-up (%s); connecting on first use", type(exc).__name__)
            return False
        return True

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection]:
        """A pooled autocommit connection: every statement is its own transaction."""
        pool = self._pool or await self._open()
        async with pool.connection() as conn:
            yield conn

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
