"""Gateway fixtures: a real gateway (uvicorn on an ephemeral loopback port) on the test database."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests

from equity_assets.db.resources import PostgresResource
from equity_assets.gateway import GatewaySettings, running_gateway
from equity_assets.security.signing import sign_request, sign_standard_webhook

SECRET = "gw-test-secret-current"
OLD_SECRET = "gw-test-secret-previous"
WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
T0 = 1_700_000_000  # the fixed "now" of every test gateway


class FixedClock:
    """The gateway's clock, frozen so the ±300 s boundary is exact."""

    def __init__(self, now: float = T0):
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Gateway:
    """A running gateway and the helpers tests use to talk to it."""

    url: str
    settings: GatewaySettings
    postgres: PostgresResource

    @property
    def upload_dir(self) -> Path:
        return self.settings.resolved_upload_dir()

    def post(self, body: Any, headers: dict[str, str], **params: str) -> requests.Response:
        return requests.post(f"{self.url}/v1/uploads", data=body, headers=headers, params=params, timeout=10)

    def upload(self, body: bytes, *, timestamp: int = T0, secret: str = SECRET, **params: str) -> requests.Response:
        """POST ``body`` signed with our scheme."""
        return self.post(body, sign_request(body, secret, timestamp), **params)

    def upload_webhook_signed(self, body: bytes, *, timestamp: int = T0,
                              secret: str = WEBHOOK_SECRET) -> requests.Response:
        """POST ``body`` signed with Standard Webhooks headers."""
        return self.post(body, sign_standard_webhook(body, secret, f"msg_{secrets.token_hex(6)}", timestamp))

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        """Rows as the pipeline sees them (service_role)."""
        with self.postgres.connection() as conn:
            return conn.execute(sql, params).fetchall()

    def events(self, event_type: str) -> list[tuple]:
        """(upload_id, payload, idempotency_key) of each event of this type, oldest first."""
        return self.query("SELECT upload_id::text, payload, idempotency_key FROM pipeline_events "
                          "WHERE event_type = %s ORDER BY id", (event_type,))

    def stored_files(self) -> list[Path]:
        """Every file under the upload folder, temp files included."""
        return sorted(p for p in self.upload_dir.rglob("*") if p.is_file())


def unique_csv(rows: int = 3) -> bytes:
    """A small CSV nobody has uploaded before (the replay guard would refuse a repeat)."""
    lines = ["Address,City,State,Zip"] + [f"{i} {secrets.token_hex(4)} St,Austin,TX,7870{i % 10}" for i in range(rows)]
    return ("\r\n".join(lines) + "\r\n").encode()


@pytest.fixture
def gateway_db(clean_db, test_db):
    """A clean database, rate-limit counters included (the shared conftest does not know that table)."""
    with psycopg.connect(test_db.admin_dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE gateway_rate_limits")
    return clean_db


@pytest.fixture
def upload_secrets_env(monkeypatch) -> None:
    monkeypatch.setenv("EQUITY_UPLOAD_SECRETS", f"{SECRET},{OLD_SECRET},{WEBHOOK_SECRET}")


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()


@pytest.fixture
def start_gateway(gateway_db, postgres, tmp_path, upload_secrets_env, clock) -> Iterator[Callable[..., Gateway]]:
    """Start gateways with overridden settings; all are stopped at the end of the test."""
    with ExitStack() as stack:
        def start(**overrides: Any) -> Gateway:
            fields: dict[str, Any] = {"upload_dir": tmp_path / "uploads", "clock": clock, "postgres": postgres}
            fields.update(overrides)
            settings = GatewaySettings(**fields)
            url = stack.enter_context(running_gateway(settings))
            return Gateway(url, settings, settings.postgres or postgres)

        yield start


@pytest.fixture
def gateway(start_gateway) -> Gateway:
    return start_gateway()
