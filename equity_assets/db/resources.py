"""PostgresResource: the one way assets reach the database."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool
from pydantic import PrivateAttr

from .settings import database_url


class PostgresResource(dg.ConfigurableResource):
    """A psycopg 3 connection pool.

    Every connection switches to `role` (default `service_role`, which bypasses RLS as the
    pipeline must); leave `dsn` empty to use `EQUITY_DATABASE_URL` or the embedded cluster.
    """

    dsn: str = ""
    role: str = "service_role"
    min_size: int = 1
    max_size: int = 4
    application_name: str = "equity_assets"

    _pool: ConnectionPool | None = PrivateAttr(default=None)
    _pool_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    def resolved_dsn(self) -> str:
        return self.dsn or database_url()

    def _configure(self, conn: psycopg.Connection) -> None:
        conn.execute("SELECT set_config('application_name', %s, false)", (self.application_name,))
        if self.role:
            conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(self.role)))
        conn.commit()

    def _open_pool(self) -> ConnectionPool:
        with self._pool_lock:  # threads (gateway workers) may race to the first connection
            if self._pool is None:
                self._pool = self._new_pool()
            return self._pool

    def _new_pool(self) -> ConnectionPool:
        pool = ConnectionPool(
            self.resolved_dsn(),
            min_size=self.min_size,
            max_size=self.max_size,
            configure=self._configure,
            open=True,
            name="equity",
        )
        pool.wait(timeout=30)
        return pool

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._open_pool()

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        self.close()

    def close(self) -> None:
        with self._pool_lock:
            if self._pool is not None:
                self._pool.close()
                self._pool = None

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        """A pooled connection inside a transaction: committed on success, rolled back on error."""
        with self._open_pool().connection() as conn:
            yield conn
