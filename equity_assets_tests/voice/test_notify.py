"""Broker notifications: signed, retried with backoff, dead-lettered after the last try."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import psycopg
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import Response

from equity_assets.security.signing import verify_request
from equity_assets.serving import running_in_thread
from equity_assets.observe.inbox import claim
from equity_assets.voice.inbox import process_event
from equity_assets.voice.notify import SECRET_ENV, deliver_due
from equity_assets.voice.outcomes import OutcomeSettings

from .conftest import add_broker, add_call, add_consenting_lead, add_inbox, report_message

SECRET = "broker-hook-secret"


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


def booked(db: psycopg.Connection, url: str) -> None:
    lead = add_consenting_lead(db, add_broker(db, notify_url=url))
    _, vapi_id = add_call(db, lead)
    event = add_inbox(db, report_message(vapi_id))
    claim(db, "vapi", event)
    with db.transaction():
        assert process_event(db, event, settings=OutcomeSettings()).outcome == "booked"


def deliver(postgres, at: datetime, max_tries: int = 5):
    return deliver_due(postgres.connection, now=at, max_tries=max_tries)


@pytest.mark.parametrize("endpoint", [[503, 500]], indirect=True)
def test_retried_with_backoff_until_delivered_and_signed(db, postgres, endpoint, monkeypatch):
    monkeypatch.setenv(SECRET_ENV, SECRET)
    receiver, url = endpoint
    booked(db, url)
    t0 = datetime.now(timezone.utc)
    assert deliver(postgres, t0) == {"retry": 1}
    assert deliver(postgres, t0 + timedelta(seconds=30)) == {}  # not due yet: next try after 1 minute
    assert deliver(postgres, t0 + timedelta(minutes=1, seconds=1)) == {"retry": 1}
    assert deliver(postgres, t0 + timedelta(minutes=2)) == {}  # then after 2 more minutes
    assert deliver(postgres, t0 + timedelta(minutes=3, seconds=2)) == {"sent": 1}
    assert db.execute("SELECT status, attempts FROM broker_notifications").fetchone() == ("sent", 3)
    body, headers = receiver.received[-1]
    assert verify_request(body, headers, [SECRET], time.time()) == 0
    assert b'"type":"appointment_booked"' in body
    assert deliver(postgres, t0 + timedelta(hours=1)) == {}  # sent once, never again


@pytest.mark.parametrize("endpoint", [[500] * 10], indirect=True)
def test_dead_lettered_after_the_last_try(db, postgres, endpoint, monkeypatch):
    monkeypatch.setenv(SECRET_ENV, SECRET)
    receiver, url = endpoint
    booked(db, url)
    at = datetime.now(timezone.utc)
    results = [deliver(postgres, at + timedelta(hours=i), max_tries=3) for i in range(5)]
    assert results == [{"retry": 1}, {"retry": 1}, {"dead": 1}, {}, {}]
    assert len(receiver.received) == 3
    assert db.execute("SELECT status FROM broker_notifications").fetchone()[0] == "dead"
    assert db.execute("SELECT stage, reason LIKE '%%3 times%%' FROM pipeline_dlq").fetchall() == [
        ("broker_notifications", True)]


def test_a_broker_without_a_url_is_recorded_not_retried(db, postgres, monkeypatch):
    monkeypatch.setenv(SECRET_ENV, SECRET)
    booked(db, None)
    assert deliver(postgres, datetime.now(timezone.utc)) == {"no_url": 1}
    assert deliver(postgres, datetime.now(timezone.utc) + timedelta(hours=1)) == {}
