"""Bounded lock waits: a writer that cannot get its rows in time fails and retries, it does not hang."""

import psycopg

#: Longest wait for a row lock. A run may keep several transactions open at once; two runs
#: (or a run and another writer) can each wait on a lock the other's *idle* transaction holds,
#: a cycle PostgreSQL cannot see. The timeout turns that into an error (and a retried run).
LOCK_TIMEOUT = "30s"


def set_lock_timeout(conn: psycopg.Connection) -> None:
    """Bound lock waits for the rest of this transaction."""
    conn.execute("SELECT set_config('lock_timeout', %s, true)", (LOCK_TIMEOUT,))
