"""`equity brokers add | set-password | list | token` against the test database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from equity_assets.gateway.portal.identity import token_broker

from .portal_fixtures import JWT_SECRET

EQUITY = str(Path(sys.executable).parent / "equity")


def equity(db, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    env = {**os.environ, "EQUITY_DATABASE_URL": db.app_dsn, "EQUITY_JWT_SECRET": JWT_SECRET}
    return subprocess.run([EQUITY, "brokers", *args], input=stdin, env=env, capture_output=True, text=True, timeout=120)


def test_add_set_password_list_and_token(gateway_db, monkeypatch):
    added = equity(gateway_db, "add", "Sierra Lending", "--email", "Ops@Sierra.example", "--states", "ca,nv",
                   "--daily-cap", "120")
    assert added.returncode == 0, added.stderr
    broker = json.loads(added.stdout)["id"]
    assert equity(gateway_db, "add", "Again", "--email", "ops@sierra.example", "--states", "CA").returncode == 1
    assert equity(gateway_db, "add", "Bad", "--email", "x@y.example", "--states", "California").returncode == 1
    assert equity(gateway_db, "set-password", "ops@sierra.example", stdin="short\n").returncode == 1
    secret = "a long enough passphrase"
    done = equity(gateway_db, "set-password", "OPS@sierra.example", stdin=secret + "\n")
    assert done.returncode == 0, done.stderr
    [row] = json.loads(equity(gateway_db, "list").stdout)
    assert row == {**row, "id": broker, "email": "ops@sierra.example", "states": ["CA", "NV"], "daily_cap": 120,
                   "has_password": True, "locked": False}
    with __import__("psycopg").connect(gateway_db.admin_dsn) as conn:
        stored = conn.execute("SELECT password_hash FROM broker_credentials").fetchone()[0]
    assert stored.startswith("$argon2id$") and secret not in stored
    token = equity(gateway_db, "token", "ops@sierra.example").stdout.strip()
    monkeypatch.setenv("EQUITY_JWT_SECRET", JWT_SECRET)
    assert str(token_broker(token)) == broker


def test_a_broker_gets_their_own_signing_secret_on_creation_and_rotation(gateway_db):
    import psycopg

    from equity_assets.security.notify import broker_signing_secrets

    first = json.loads(equity(gateway_db, "add", "North", "--email", "n@north.example", "--states", "WA").stdout)
    other = json.loads(equity(gateway_db, "add", "South", "--email", "s@south.example", "--states", "TX").stdout)
    assert first["signing_secret"].startswith("whsec_") and first["signing_secret"] != other["signing_secret"]
    rotated = equity(gateway_db, "rotate-secret", "N@north.example")
    assert rotated.returncode == 0, rotated.stderr
    fresh = json.loads(rotated.stdout)
    assert fresh["id"] == first["id"] and fresh["signing_secret"] not in (first["signing_secret"], other["signing_secret"])
    with psycopg.connect(gateway_db.admin_dsn) as conn:
        # newest first; the previous one keeps signing during the 24-hour overlap
        assert broker_signing_secrets(conn, first["id"]) == [fresh["signing_secret"], first["signing_secret"]]
        assert broker_signing_secrets(conn, other["id"]) == [other["signing_secret"]]
    assert equity(gateway_db, "rotate-secret", "nobody@x.example").returncode == 1
