"""An asyncio connection pool for the webhook hot path.

Webhooks arrive by the thousand per second; each is one INSERT. Running it on the event loop
saves the thread hop (and the GIL contention between threads) that the blocking pool costs, and
autocommit makes the INSERT its own durable transaction in one round trip instead of three
(BEGIN, INSERT, COMMIT).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from equity_assets.db.resources import PostgresResource


class AsyncPool:
    """Opened on first use (on the serving loop), as the same role as ``postgres``'s pool."""

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

    async def _open(self) -> AsyncConnectionPool:
        async with self._opening:
            if self._pool is None:
                pool = AsyncConnectionPool(self._postgres.resolved_dsn(), min_size=1, max_size=self._max_size,
                                           kwargs={"autocommit": True}, configure=self._configure, open=False,
                                           name="equity_async")
                await pool.open(wait=True, timeout=30)
                self._pool = pool
            return self._pool

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
