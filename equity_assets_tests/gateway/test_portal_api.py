"""The broker JSON API over real HTTP: RLS decides, a JWT is checked strictly, another broker's lead is 404."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import jwt
import psycopg
import pytest
import requests

from equity_assets.gateway.portal.identity import issue_token

from .portal_fixtures import JWT_SECRET, portal_env, two_brokers  # noqa: F401 (fixtures)


def get(gateway, path: str, token: str | None, **params) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.get(f"{gateway.url}/api/v1{path}", headers=headers, params=params, timeout=10)


def test_a_jwt_lists_only_a_leads_and_gets_404_for_b(gateway, two_brokers):
    a, b = two_brokers
    token = issue_token(a.id)
    answer = get(gateway, "/leads", token)
    assert answer.status_code == 200
    body = answer.json()
    assert body["total"] == 3
    assert {item["id"] for item in body["items"]} == {str(i) for i in a.leads}
    assert get(gateway, f"/leads/{a.leads[0]}", token).json()["first_name"] == "Alice"
    other = get(gateway, f"/leads/{b.leads[0]}", token)
    missing = get(gateway, f"/leads/{uuid.uuid4()}", token)
    assert other.status_code == missing.status_code == 404
    assert other.json() == missing.json()  # nothing tells "someone else's" from "no such lead"
    assert {i["id"] for i in get(gateway, "/leads", issue_token(b.id)).json()["items"]} == {str(i) for i in b.leads}


def test_filters_and_pagination(gateway, two_brokers):
    a, _ = two_brokers
    token = issue_token(a.id)
    assert [i["first_name"] for i in get(gateway, "/leads", token, state="CA").json()["items"]] == ["Alice", "Ava"]
    assert [i["first_name"] for i in get(gateway, "/leads", token, min_score=60).json()["items"]] == ["Alice", "Ava"]
    assert [i["first_name"] for i in get(gateway, "/leads", token, status="queued").json()["items"]] == ["Aaron"]
    assert [i["first_name"] for i in get(gateway, "/leads", token, q="arden").json()["items"]] == ["Ava"]
    assert get(gateway, "/leads", token, q="Bob").json()["total"] == 0  # B's lead is invisible to search too
    first = get(gateway, "/leads", token, limit=2).json()
    second = get(gateway, "/leads", token, limit=2, offset=2).json()
    assert first["total"] == second["total"] == 3
    assert len(first["items"]) == 2 and len(second["items"]) == 1
    assert get(gateway, "/leads", token, status="bogus").status_code == 422
    assert get(gateway, "/leads", token, q="%' OR 1=1 --").json()["total"] == 0


def _forge(claims: dict, secret: str = JWT_SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, secret, algorithm=algorithm)


@pytest.mark.parametrize("case", ["none", "garbage", "wrong_secret", "expired", "no_exp", "wrong_role",
                                  "wrong_aud", "bad_sub", "alg_none"])
def test_tokens_are_checked_strictly(gateway, two_brokers, case):
    a, _ = two_brokers
    now = int(time.time())
    good = {"sub": str(a.id), "role": "authenticated", "aud": "authenticated", "iat": now, "exp": now + 600}
    tokens = {
        "none": None,
        "garbage": "not.a.jwt",
        "wrong_secret": _forge(good, secret="another-secret-0123456789abcdef0123456"),
        "expired": _forge({**good, "exp": now - 5}),
        "no_exp": _forge({k: v for k, v in good.items() if k != "exp"}),
        "wrong_role": _forge({**good, "role": "service_role"}),
        "wrong_aud": _forge({**good, "aud": "anon"}),
        "bad_sub": _forge({**good, "sub": "not-a-uuid"}),
        "alg_none": jwt.encode(good, None, algorithm="none"),
    }
    answer = get(gateway, "/leads", tokens[case])
    assert answer.status_code == 401
    assert "items" not in answer.json()


def test_calls_events_and_invoices_are_the_callers(gateway, two_brokers):
    a, b = two_brokers
    with psycopg.connect(gateway.postgres.resolved_dsn(), autocommit=True) as conn:
        conn.execute("SET ROLE service_role")
        for broker in (a, b):
            conn.execute("INSERT INTO calls (lead_id, broker_id, attempt_number, outcome) VALUES (%s, %s, 1, 'booked')",
                         (broker.leads[0], broker.id))
            conn.execute("INSERT INTO billing_events (broker_id, lead_id, event_type) VALUES (%s, %s, 'appointment_set')",
                         (broker.id, broker.leads[0]))
            conn.execute("INSERT INTO invoices (broker_id, period_start, period_end) VALUES (%s, '2026-11-01', '2026-11-30')",
                         (broker.id,))
    token = issue_token(a.id)
    for path in ("/calls", "/billing/events"):
        items = get(gateway, path, token).json()["items"]
        assert [i["lead_id"] for i in items] == [str(a.leads[0])]
    assert len(get(gateway, "/invoices", token).json()["items"]) == 1


def test_openapi_describes_the_broker_api(gateway):
    doc = requests.get(f"{gateway.url}/api/v1/openapi.json", timeout=10).json()
    assert {"/leads", "/leads/{lead_id}", "/calls", "/billing/events", "/invoices"} <= set(doc["paths"])
    assert "HTTPBearer" in doc["components"]["securitySchemes"]


def test_an_expiring_token_stops_working(gateway, two_brokers):
    a, _ = two_brokers
    token = issue_token(a.id, ttl=timedelta(seconds=1), now=datetime.now(UTC) - timedelta(seconds=2))
    assert get(gateway, "/leads", token).status_code == 401


def test_as_broker_acts_for_one_transaction_only(gateway, two_brokers):
    from equity_assets.gateway.portal.access import as_broker

    a, _ = two_brokers
    with as_broker(gateway.postgres, a.id) as conn:
        assert conn.execute("SELECT current_user, request_broker_id()").fetchone() == ("authenticated", a.id)
        assert conn.execute("SELECT count(*) FROM leads").fetchone()[0] == 3
    # The pooled connection goes back to the pipeline's role with no broker identity.
    with gateway.postgres.connection() as conn:
        assert conn.execute("SELECT current_user, request_broker_id()").fetchone() == ("service_role", None)
        assert conn.execute("SELECT count(*) FROM leads").fetchone()[0] == 5


def test_a_deactivated_brokers_token_reads_nothing(gateway, two_brokers):
    a, _ = two_brokers
    token = issue_token(a.id)
    gateway.query("UPDATE brokers SET active = false WHERE id = %s RETURNING id", (a.id,))
    assert get(gateway, "/leads", token).json()["total"] == 0
    assert get(gateway, f"/leads/{a.leads[0]}", token).status_code == 404
