"""Row-level security through the real roles, as reference/security.md prescribes."""

import json
import uuid

import psycopg
import pytest


@pytest.fixture
def brokers(admin_conn):
    """Two brokers with two and three leads, plus one unassigned lead."""
    a, b = uuid.uuid4(), uuid.uuid4()
    admin_conn.execute("INSERT INTO brokers (id, name, territory_states) VALUES (%s, 'A', '{CA}'), (%s, 'B', '{TX}')", (a, b))
    for broker, n in ((a, 2), (b, 3), (None, 1)):
        for _ in range(n):
            admin_conn.execute("INSERT INTO leads (assigned_broker_id, property_address) VALUES (%s, 'x')", (broker,))
    admin_conn.execute("INSERT INTO billing_events (broker_id, lead_id, event_type, amount) "
                       "SELECT assigned_broker_id, id, 'appointment_set', 100 FROM leads WHERE assigned_broker_id IS NOT NULL")
    admin_conn.commit()
    return a, b


def act_as(conn, role: str, sub: uuid.UUID | None = None, claims: dict | None = None) -> None:
    conn.execute("SELECT set_config('role', %s, true)", (role,))
    if sub is not None or claims is not None:
        conn.execute("SELECT set_config('request.jwt.claims', %s, true)", (json.dumps(claims if claims is not None else {"sub": str(sub)}),))


def visible(conn, table: str = "leads") -> int:
    return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def test_each_broker_sees_only_their_own_leads(admin_conn, brokers):
    a, b = brokers
    act_as(admin_conn, "authenticated", a)
    assert visible(admin_conn) == 2
    assert {r[0] for r in admin_conn.execute("SELECT assigned_broker_id FROM leads")} == {a}
    admin_conn.rollback()
    act_as(admin_conn, "authenticated", b)
    assert visible(admin_conn) == 3
    assert visible(admin_conn, "billing_events") == 3
    assert visible(admin_conn, "brokers") == 1


def test_anon_sees_nothing(admin_conn, brokers):
    act_as(admin_conn, "anon")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        visible(admin_conn)


@pytest.mark.parametrize("claims", [None, {}, {"sub": ""}, {"role": "authenticated"}])
def test_missing_claims_see_nothing(admin_conn, brokers, claims):
    act_as(admin_conn, "authenticated", claims=claims)
    assert visible(admin_conn) == 0


def test_service_role_sees_everything(admin_conn, brokers):
    act_as(admin_conn, "service_role")
    assert visible(admin_conn) == 6


def test_owner_is_subject_to_forced_rls(test_db, admin_conn, brokers):
    forced = admin_conn.execute(
        "SELECT bool_and(relforcerowsecurity AND relrowsecurity) FROM pg_class "
        "WHERE relnamespace = 'public'::regnamespace AND relkind = 'r' AND relname <> 'schema_migrations'"
    ).fetchone()[0]
    assert forced is True


def test_broker_cannot_insert_a_lead_for_another_broker(admin_conn, brokers):
    a, b = brokers
    act_as(admin_conn, "authenticated", a)
    admin_conn.execute("INSERT INTO leads (assigned_broker_id, property_address) VALUES (%s, 'mine')", (a,))
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
        admin_conn.execute("INSERT INTO leads (assigned_broker_id, property_address) VALUES (%s, 'theirs')", (b,))


def test_broker_cannot_update_another_brokers_lead(admin_conn, brokers):
    a, b = brokers
    act_as(admin_conn, "authenticated", a)
    cur = admin_conn.execute("UPDATE leads SET broker_notes = 'hijack' WHERE assigned_broker_id = %s", (b,))
    assert cur.rowcount == 0
    cur = admin_conn.execute("UPDATE leads SET broker_notes = 'mine' WHERE assigned_broker_id = %s", (a,))
    assert cur.rowcount == 2
    admin_conn.rollback()
    assert admin_conn.execute("SELECT count(*) FROM leads WHERE broker_notes = 'hijack'").fetchone()[0] == 0


def test_broker_cannot_reassign_or_touch_pipeline_columns(admin_conn, brokers):
    a, b = brokers
    act_as(admin_conn, "authenticated", a)
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        admin_conn.execute("UPDATE leads SET assigned_broker_id = %s", (b,))
    admin_conn.rollback()
    act_as(admin_conn, "authenticated", a)
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        admin_conn.execute("UPDATE leads SET consent = true")


def test_views_over_leads_do_not_leak(admin_conn, brokers):
    a, _ = brokers
    views = [r[0] for r in admin_conn.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_depend d ON d.refobjid = 'leads'::regclass "
        "JOIN pg_rewrite r ON r.oid = d.objid AND r.ev_class = c.oid WHERE c.relkind IN ('v', 'm')"
    )]
    assert views, "expected at least one view over leads"
    act_as(admin_conn, "authenticated", a)
    for view in views:
        rows = admin_conn.execute(f"SELECT broker_id, sum(leads) FROM {view} GROUP BY broker_id").fetchall()
        assert rows == [(a, 2)], view


def test_authenticated_cannot_read_pipeline_tables(admin_conn, brokers):
    a, _ = brokers
    for table in ("uploads", "pipeline_events", "pipeline_dlq", "suppression_list", "webhook_events",
                  "broker_credentials", "broker_sessions", "broker_notify_secrets", "broker_active_notify_secrets"):
        admin_conn.rollback()
        act_as(admin_conn, "authenticated", a)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            visible(admin_conn, table)
