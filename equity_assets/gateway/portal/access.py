"""Every portal and API query runs here: one transaction as ``authenticated`` with the broker's claims.

Row-level security, not the queries, decides what a broker sees: the SQL in ``queries`` has no
broker filter, and a bug there cannot widen what the database returns.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from equity_assets.db.resources import PostgresResource


@contextmanager
def as_broker(postgres: PostgresResource, broker_id: uuid.UUID) -> Iterator[psycopg.Connection]:
    """A pooled connection in a transaction acting as this broker; both settings end with the transaction."""
    claims = json.dumps({"sub": str(broker_id), "role": "authenticated"})
    with postgres.connection() as conn:
        conn.execute("SELECT set_config('role', 'authenticated', true), set_config('request.jwt.claims', %s, true)",
                     (claims,))
        if conn.execute("SELECT current_user").fetchone()[0] != "authenticated":
            raise RuntimeError("could not switch to the authenticated role")
        yield conn
