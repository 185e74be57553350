"""Shared benchmark plumbing: a throw-away database on the embedded cluster."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from ..db.cluster import APP_USER, EmbeddedCluster, migrate_and_grant


def _with_database(dsn: str, database: str) -> str:
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{database}"))


@contextmanager
def fresh_database(prefix: str = "equity_bench", cluster: EmbeddedCluster | None = None) -> Iterator[tuple[str, str]]:
    """A new, migrated database on ``cluster`` (default: the embedded one); yields (admin DSN,
    pipeline DSN) and drops it afterwards."""
    if cluster is None:
        cluster = EmbeddedCluster()
        cluster.start()
    server = cluster.dsn("postgres", admin=True)
    name = f"{prefix}_{secrets.token_hex(4)}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        admin = _with_database(server, name)
        migrate_and_grant(admin, APP_USER)
        yield admin, _with_database(cluster.dsn("postgres"), name)
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def process_children(pid: int) -> list[int]:
    """The direct children of a process (Linux ``/proc``)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except FileNotFoundError:
        return []
