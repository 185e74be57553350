"""A broker sees only their own calls, number pools and notifications; anon sees none of them."""

from __future__ import annotations

import json

import psycopg
import pytest

from .conftest import add_broker, add_call, add_consenting_lead, add_inbox, report_message
from .test_outcomes import process

TABLES = ("calls", "broker_phone_numbers", "lead_number_assignments", "broker_notifications", "billing_events")


def seen(dsn: str, role: str, broker: str | None, table: str) -> list[str]:
    with psycopg.connect(dsn) as conn:
        conn.execute("SELECT set_config('role', %s, true)", (role,))
        if broker:
            conn.execute("SELECT set_config('request.jwt.claims', %s, true)", (json.dumps({"sub": broker}),))
        return [str(r[0]) for r in conn.execute(f"SELECT broker_id FROM {table}")]


def test_brokers_see_only_their_own_voice_rows(db, clean_db):
    brokers = []
    for name, number in (("A", "+12125550000"), ("B", "+13055550000")):
        broker = add_broker(db, name=name, numbers=((number, "NY", 90.0),))
        lead = add_consenting_lead(db, broker, phone=number[:-4] + "0101")
        _, vapi_id = add_call(db, lead)
        process(db, add_inbox(db, report_message(vapi_id)))  # booked: billing + notification rows
        brokers.append(broker)
    for table in TABLES:
        for broker in brokers:
            assert seen(clean_db.admin_dsn, "authenticated", broker, table) == [broker], table
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            seen(clean_db.admin_dsn, "anon", None, table)
    with psycopg.connect(clean_db.admin_dsn) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("SELECT set_config('role', 'authenticated', true)")
        conn.execute("SELECT set_config('request.jwt.claims', %s, true)", (json.dumps({"sub": brokers[0]}),))
        conn.execute("UPDATE broker_notifications SET status = 'sent'")
