"""Broker notifications: our signed webhook to a broker's ``notify_url`` when an appointment is booked.

Each notification is a ``broker_notifications`` row queued in the transaction that applied the
call report, so it exists exactly when the booking does. Delivery claims a due row (try counter
up, next try pushed back: 1, 2, 4 … minutes) in its own transaction, posts it, then records the
result, so a crash mid-delivery loses nothing and a slow broker endpoint holds no lock. After
``max_tries`` failed tries the row is ``dead`` and a dead letter says why. The body is signed with
Standard Webhooks headers under *that broker's* active secrets (``security.notify``); the
``webhook-id`` is the same on every try, so the broker's receiver can drop a repeat.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime

import psycopg
import requests

from ..observe.events import DeadLetter, send_to_dlq
from ..security.notify import broker_signing_secrets, notification_headers

STAGE = "broker_notifications"
DEFAULT_MAX_TRIES = 5
TIMEOUT = (3.05, 10.0)


def _claim(conn: psycopg.Connection, now: datetime, limit: int) -> list[tuple]:
    rows = conn.execute(
        """SELECT n.id, n.attempts, n.payload, b.notify_url, n.broker_id FROM broker_notifications n
           JOIN brokers b ON b.id = n.broker_id
           WHERE n.status = 'pending' AND n.next_attempt_at <= %s
           ORDER BY n.next_attempt_at, n.id LIMIT %s FOR UPDATE OF n SKIP LOCKED""",
        (now, limit),
    ).fetchall()
    for row in rows:
        conn.execute(
            """UPDATE broker_notifications SET attempts = attempts + 1,
                      next_attempt_at = %s + make_interval(mins => power(2, attempts)::int) WHERE id = %s""",
            (now, row[0]),
        )
    return [(r[0], r[1] + 1, r[2], r[3], r[4]) for r in rows]


def post_signed(url: str, payload: dict, secrets: list[str], msg_id: str) -> int:
    """POST the notification; the HTTP status (raises ``requests.RequestException`` on no answer)."""
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    headers = {"Content-Type": "application/json",
               **notification_headers(body, secrets, msg_id=msg_id, timestamp=int(time.time()))}
    return requests.post(url, data=body, headers=headers, timeout=TIMEOUT, allow_redirects=False).status_code


def deliver_due(connect: Callable[[], AbstractContextManager[psycopg.Connection]], *, now: datetime,
                max_tries: int = DEFAULT_MAX_TRIES, limit: int = 200, run_id: str | None = None) -> Counter[str]:
    """Try every due notification once; counts of ``sent``, ``retry``, ``dead`` and ``no_url``."""
    with connect() as conn:
        due = _claim(conn, now, limit)
    results: Counter[str] = Counter()
    for notification_id, tries, payload, url, broker_id in due:
        error = None
        if not url:
            with connect() as conn:
                conn.execute("UPDATE broker_notifications SET status = 'no_url' WHERE id = %s", (notification_id,))
            results["no_url"] += 1
            continue
        with connect() as conn:
            secrets = broker_signing_secrets(conn, broker_id)
        if not secrets:
            error = "the broker has no signing secret (equity brokers rotate-secret)"
        else:
            try:
                status = post_signed(url, payload, secrets, f"msg_notification_{notification_id}")
                error = None if 200 <= status < 300 else f"HTTP {status}"
            except requests.RequestException as exc:
                error = type(exc).__name__
        with connect() as conn:
            results[_record(conn, notification_id, tries, error, max_tries=max_tries, run_id=run_id)] += 1
    return results


def _record(conn: psycopg.Connection, notification_id: int, tries: int, error: str | None, *, max_tries: int,
            run_id: str | None) -> str:
    if error is None:
        conn.execute("UPDATE broker_notifications SET status = 'sent', sent_at = now(), last_error = NULL "
                     "WHERE id = %s", (notification_id,))
        return "sent"
    if tries >= max_tries:
        conn.execute("UPDATE broker_notifications SET status = 'dead', last_error = %s WHERE id = %s",
                     (error, notification_id))
        send_to_dlq(conn, STAGE, [DeadLetter(reason=f"broker notification failed {tries} times: {error}",
                                             source_ref=f"broker_notifications:{notification_id}")], run_id=run_id)
        return "dead"
    conn.execute("UPDATE broker_notifications SET last_error = %s WHERE id = %s", (error, notification_id))
    return "retry"

