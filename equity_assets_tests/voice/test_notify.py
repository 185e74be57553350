"""Broker notifications: signed with the broker's own secret, retried with backoff, dead-lettered
after the last try."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import psycopg
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import Response

from equity_assets.security.notify import issue_signing_secret
from equity_assets.security.signing import SignatureError, verify_standard_webhook
from equity_assets.serving import running_in_thread
from equity_assets.observe.inbox import claim
from equity_assets.voice.inbox import process_event
from equity_assets.voice.notify import deliver_due
from equity_assets.voice.outcomes import OutcomeSettings

from .conftest import add_broker, add_call, add_consenting_lead, add_inbox, report_message


class BrokerEndpoint:
    """A broker's webhook receiver answering the statuses it is given, then 200."""

    def __init__(self, statuses: list[int]):
        self.statuses = statuses
        self.received: list[tuple[bytes, dict[str, str]]] = []
        self.app = FastAPI()
        self.app.add_api_route("/hook", self.hook, methods=["POST"])

    async def hook(self, request: Request) -> Response:
        self.received.append((await request.body(), dict(request.headers)))
        return Response(status_code=self.statuses.pop(0) if self.statuses else 200)


@pytest.fixture
def endpoint(request) -> Iterator[tuple[BrokerEndpoint, str]]:
    receiver = BrokerEndpoint(list(getattr(request, "param", [])))
    with running_in_thread(receiver.app, name="broker-hook") as url:
        yield receiver, f"{url}/hook"


def booked(db: psycopg.Connection, url: str | None, *, broker: str | None = None, secret: bool = True) -> str | None:
    """A booked call of ``broker`` (a new one by default); the broker's signing secret, if it has one."""
    n = db.execute("SELECT count(*) FROM leads").fetchone()[0]
    broker = broker or add_broker(db, notify_url=url, name=f"Broker {n}", numbers=((f"+1212555{n:04d}", "NY", 90.0),))
    issued = issue_signing_secret(db, broker) if secret else None
    lead = add_consenting_lead(db, broker, phone=f"+1212555{n + 100:04d}")
    _, vapi_id = add_call(db, lead)
    event = add_inbox(db, report_message(vapi_id))
    claim(db, "vapi", event)
    with db.transaction():
        assert process_event(db, event, settings=OutcomeSettings()).outcome == "booked"
    return issued


def deliver(postgres, at: datetime, max_tries: int = 5):
    return deliver_due(postgres.connection, now=at, max_tries=max_tries)


@pytest.mark.parametrize("endpoint", [[503, 500]], indirect=True)
def test_retried_with_backoff_until_delivered_and_signed(db, postgres, endpoint):
    receiver, url = endpoint
    secret = booked(db, url)
    t0 = datetime.now(timezone.utc)
    assert deliver(postgres, t0) == {"retry": 1}
    assert deliver(postgres, t0 + timedelta(seconds=30)) == {}  # not due yet: next try after 1 minute
    assert deliver(postgres, t0 + timedelta(minutes=1, seconds=1)) == {"retry": 1}
    assert deliver(postgres, t0 + timedelta(minutes=2)) == {}  # then after 2 more minutes
    assert deliver(postgres, t0 + timedelta(minutes=3, seconds=2)) == {"sent": 1}
    assert db.execute("SELECT status, attempts FROM broker_notifications").fetchone() == ("sent", 3)
    body, headers = receiver.received[-1]
    assert verify_standard_webhook(body, headers, [secret], time.time()) == 0
    assert {h["webhook-id"] for _, h in receiver.received} == {headers["webhook-id"]}  # one id for every try
    assert b'"type":"appointment_booked"' in body
    assert deliver(postgres, t0 + timedelta(hours=1)) == {}  # sent once, never again


@pytest.mark.parametrize("endpoint", [[500] * 10], indirect=True)
def test_dead_lettered_after_the_last_try(db, postgres, endpoint):
    receiver, url = endpoint
    booked(db, url)
    at = datetime.now(timezone.utc)
    results = [deliver(postgres, at + timedelta(hours=i), max_tries=3) for i in range(5)]
    assert results == [{"retry": 1}, {"retry": 1}, {"dead": 1}, {}, {}]
    assert len(receiver.received) == 3
    assert db.execute("SELECT status FROM broker_notifications").fetchone()[0] == "dead"
    assert db.execute("SELECT stage, reason LIKE '%%3 times%%' FROM pipeline_dlq").fetchall() == [
        ("broker_notifications", True)]


def test_a_broker_without_a_url_is_recorded_not_retried(db, postgres):
    booked(db, None)
    assert deliver(postgres, datetime.now(timezone.utc)) == {"no_url": 1}
    assert deliver(postgres, datetime.now(timezone.utc) + timedelta(hours=1)) == {}


def test_each_broker_signs_with_its_own_secret_and_a_rotation_overlaps(db, postgres, endpoint):
    receiver, url = endpoint
    secret_a = booked(db, url)
    secret_b = booked(db, url)
    assert deliver(postgres, datetime.now(timezone.utc)) == {"sent": 2}
    (body_a, headers_a), (body_b, headers_b) = receiver.received
    assert verify_standard_webhook(body_a, headers_a, [secret_a], time.time()) == 0
    assert verify_standard_webhook(body_b, headers_b, [secret_b], time.time()) == 0
    with pytest.raises(SignatureError):  # broker B's secret cannot vouch for (or forge) A's notifications
        verify_standard_webhook(body_a, headers_a, [secret_b], time.time())

    broker_a = db.execute("SELECT broker_id FROM broker_notifications ORDER BY id LIMIT 1").fetchone()[0]
    rotated = booked(db, url, broker=str(broker_a))  # a new secret; the previous one signs for 24 h more
    assert deliver(postgres, datetime.now(timezone.utc)) == {"sent": 1}
    body, headers = receiver.received[-1]
    assert len(headers["webhook-signature"].split()) == 2
    assert verify_standard_webhook(body, headers, [rotated], time.time()) == 0
    assert verify_standard_webhook(body, headers, [secret_a], time.time()) == 0


def test_a_broker_without_a_secret_is_retried_then_dead_lettered_with_the_reason(db, postgres, endpoint):
    receiver, url = endpoint
    booked(db, url, secret=False)
    at = datetime.now(timezone.utc)
    assert [deliver(postgres, at + timedelta(hours=i), max_tries=2) for i in range(2)] == [{"retry": 1}, {"dead": 1}]
    assert receiver.received == []  # nothing unsigned ever leaves
    (reason,) = db.execute("SELECT reason FROM pipeline_dlq WHERE stage = 'broker_notifications'").fetchone()
    assert "no signing secret" in reason
