"""Broker isolation over every table and view a broker can read, driven by the catalog.

Two brokers each own one row of every broker-readable relation. As broker A: only A's row is
visible, and every attempt to insert, update, move or delete a row of B is refused or touches
nothing. The list of relations comes from the catalog, so a newly granted table without an
entry here fails the test instead of going untested.
"""

import json
import uuid

import psycopg
import pytest

# relation -> the column naming the broker who owns a row
OWNER_COLUMN = {
    "leads": "assigned_broker_id",
    "brokers": "id",
    "billing_events": "broker_id",
    "invoices": "broker_id",
    "calls": "broker_id",
    "lead_consent_audit": "broker_id",
    "email_replies": "broker_id",
    "broker_phone_numbers": "broker_id",
    "lead_number_assignments": "broker_id",
    "campaign_sends": "broker_id",
    "broker_lead_pipeline": "broker_id",
    "invoice_revisions": "broker_id",
    "broker_cap_requests": "broker_id",
    "broker_notifications": "broker_id",
}
# broker-readable relations owned through their lead, not a broker column
LEAD_OWNED = {"consent_tokens": "lead_id"}
# the same rows for every broker (the published price list); never writable by one
SHARED = {"billing_price_list"}
# relations brokers may write at all (column grants + policies); everything else is read-only
BROKER_WRITABLE = {"leads", "brokers", "billing_events", "broker_cap_requests"}
# what "refused" looks like: no privilege / a policy violation, or a view that cannot be written
REFUSED = (psycopg.errors.InsufficientPrivilege, psycopg.errors.ObjectNotInPrerequisiteState)

SEED = """
INSERT INTO leads (id, assigned_broker_id, property_address) VALUES (%(la)s, %(a)s, 'a'), (%(lb)s, %(b)s, 'b'),
                                                                     (gen_random_uuid(), NULL, 'nobody');
INSERT INTO billing_events (broker_id, lead_id, event_type, amount)
    VALUES (%(a)s, %(la)s, 'appointment_set', 1), (%(b)s, %(lb)s, 'appointment_set', 2);
INSERT INTO invoices (broker_id, period_start, period_end)
    VALUES (%(a)s, '2026-01-01', '2026-01-31'), (%(b)s, '2026-01-01', '2026-01-31');
INSERT INTO broker_phone_numbers (id, broker_id, e164)
    VALUES (%(pa)s, %(a)s, '+15550000001'), (%(pb)s, %(b)s, '+15550000002');
INSERT INTO lead_number_assignments (lead_id, broker_id, phone_number_id)
    VALUES (%(la)s, %(a)s, %(pa)s), (%(lb)s, %(b)s, %(pb)s);
INSERT INTO calls (lead_id, broker_id, attempt_number) VALUES (%(la)s, %(a)s, 1), (%(lb)s, %(b)s, 1);
INSERT INTO lead_consent_audit (lead_id, broker_id, decision)
    VALUES (%(la)s, %(a)s, 'granted'), (%(lb)s, %(b)s, 'granted');
INSERT INTO webhook_events (id, provider, event_key, payload)
    OVERRIDING SYSTEM VALUE VALUES (-1, 'instantly', 'ra', '{}'), (-2, 'instantly', 'rb', '{}');
INSERT INTO email_replies (webhook_event_id, lead_id, broker_id, intent)
    VALUES (-1, %(la)s, %(a)s, 'interested'), (-2, %(lb)s, %(b)s, 'interested');
INSERT INTO campaign_sends (batch_date, lead_id, broker_id)
    VALUES ('2026-01-05', %(la)s, %(a)s), ('2026-01-05', %(lb)s, %(b)s);
INSERT INTO invoice_revisions (invoice_id, revision, broker_id, total, line_items, event_count, reason)
    SELECT id, 1, broker_id, 0, '[]', 0, 'seed' FROM invoices;
INSERT INTO broker_notifications (broker_id, lead_id, call_id, kind, payload)
    SELECT broker_id, lead_id, id, 'appointment_booked', '{}' FROM calls;
INSERT INTO broker_cap_requests (broker_id, requested_cap) VALUES (%(a)s, 300), (%(b)s, 300);
INSERT INTO consent_tokens (lead_id, nonce_hash, expires_at)
    VALUES (%(la)s, repeat('a', 64), now() + interval '1 day'), (%(lb)s, repeat('b', 64), now() + interval '1 day');
"""


@pytest.fixture
def two_brokers(clean_db):
    ids = {k: uuid.uuid4() for k in ("a", "b", "la", "lb", "pa", "pb")}
    with psycopg.connect(clean_db.admin_dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO brokers (id, name) VALUES (%(a)s, 'A'), (%(b)s, 'B')", ids)
        for statement in filter(str.strip, SEED.split(";")):
            conn.execute(statement, ids)
    return ids


def broker_relations(conn) -> set[str]:
    return {r[0] for r in conn.execute(
        """SELECT c.relname FROM pg_class c
           WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
             AND has_any_column_privilege('authenticated', c.oid, 'SELECT')""")}


def writable_relations(conn) -> set[str]:
    return {r[0] for r in conn.execute(
        """SELECT c.relname FROM pg_class c
           WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
             AND (has_any_column_privilege('authenticated', c.oid, 'INSERT')
                  OR has_any_column_privilege('authenticated', c.oid, 'UPDATE')
                  OR has_table_privilege('authenticated', c.oid, 'DELETE')
                  OR has_table_privilege('authenticated', c.oid, 'TRUNCATE'))""")}


def act_as(conn, broker) -> None:
    conn.execute("SELECT set_config('role', 'authenticated', true)")
    conn.execute("SELECT set_config('request.jwt.claims', %s, true)", (json.dumps({"sub": str(broker)}),))


def snapshot(conn, relation):
    return sorted(map(str, conn.execute(f"SELECT to_jsonb(t) FROM {relation} t").fetchall()))


def test_the_relation_list_is_the_catalogs(clean_db):
    with psycopg.connect(clean_db.admin_dsn) as conn:
        assert broker_relations(conn) == set(OWNER_COLUMN) | set(LEAD_OWNED) | SHARED
        assert writable_relations(conn) == BROKER_WRITABLE


@pytest.mark.parametrize("relation", sorted(LEAD_OWNED))
def test_rows_owned_through_a_lead_are_read_only_by_its_broker(clean_db, two_brokers, relation):
    column = LEAD_OWNED[relation]
    with psycopg.connect(clean_db.admin_dsn) as conn:
        for me, lead in (("a", "la"), ("b", "lb")):
            act_as(conn, two_brokers[me])
            assert [r[0] for r in conn.execute(f"SELECT {column} FROM {relation}")] == [two_brokers[lead]]
            conn.rollback()
        before = snapshot(conn, relation)
        conn.commit()
        act_as(conn, two_brokers["a"])
        refused_or_no_rows(conn, f"DELETE FROM {relation} WHERE {column} = %s", (two_brokers["lb"],))
        refused_or_no_rows(conn, f"UPDATE {relation} SET {column} = %s", (two_brokers["la"],))
        conn.rollback()
        assert snapshot(conn, relation) == before


@pytest.mark.parametrize("relation", sorted(SHARED))
def test_shared_relations_read_the_same_for_every_broker_and_take_no_writes(clean_db, two_brokers, relation):
    with psycopg.connect(clean_db.admin_dsn) as conn:
        before = snapshot(conn, relation)
        conn.commit()
        seen = []
        for me in ("a", "b"):
            act_as(conn, two_brokers[me])
            seen.append(snapshot(conn, relation))
            refused_or_no_rows(conn, f"DELETE FROM {relation}", None)
            conn.rollback()
        assert seen == [before, before] and before
        assert snapshot(conn, relation) == before


@pytest.mark.parametrize("relation", sorted(OWNER_COLUMN))
def test_each_broker_reads_only_their_own_rows(clean_db, two_brokers, relation):
    owner = OWNER_COLUMN[relation]
    with psycopg.connect(clean_db.admin_dsn) as conn:
        for me in ("a", "b"):
            act_as(conn, two_brokers[me])
            seen = [r[0] for r in conn.execute(f"SELECT {owner} FROM {relation}")]
            assert seen == [two_brokers[me]], (relation, me)
            conn.rollback()
        # no claims, or claims without a subject: nothing
        conn.execute("SELECT set_config('role', 'authenticated', true)")
        assert conn.execute(f"SELECT count(*) FROM {relation}").fetchone()[0] == 0
        conn.rollback()
        conn.execute("SELECT set_config('role', 'anon', true)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(f"SELECT count(*) FROM {relation}")


def refused_or_no_rows(conn, statement, params) -> None:
    """The statement raises a privilege/RLS error or changes no row; rolled back either way."""
    try:
        with conn.transaction():
            cur = conn.execute(statement, params)
            assert cur.rowcount == 0, statement
    except REFUSED:
        pass


@pytest.mark.parametrize("relation", sorted(OWNER_COLUMN))
def test_a_broker_cannot_write_another_brokers_rows(clean_db, two_brokers, relation):
    owner = OWNER_COLUMN[relation]
    a, b = two_brokers["a"], two_brokers["b"]
    with psycopg.connect(clean_db.admin_dsn) as conn:
        before = snapshot(conn, relation)
        conn.commit()
        act_as(conn, a)
        attempts = [
            (f"UPDATE {relation} SET {owner} = {owner} WHERE {owner} = %s", (b,)),
            (f"DELETE FROM {relation} WHERE {owner} = %s", (b,)),
            # moving one's own row to the other broker
            (f"UPDATE {relation} SET {owner} = %s WHERE {owner} = %s", (b, a)),
        ]
        for statement, params in attempts:
            refused_or_no_rows(conn, statement, params)
        # inserting a row for B: refused (no grant, or "new row violates row-level security")
        with pytest.raises(REFUSED):
            with conn.transaction():
                conn.execute(f"INSERT INTO {relation} ({owner}) VALUES (%s)", (b,))
        conn.rollback()
        assert snapshot(conn, relation) == before


def test_a_broker_insert_for_another_broker_is_refused_by_the_policy_not_by_constraints(clean_db, two_brokers):
    """The only writable table: the same insert succeeds for oneself, so refusal is the policy."""
    a, b = two_brokers["a"], two_brokers["b"]
    with psycopg.connect(clean_db.admin_dsn) as conn:
        act_as(conn, a)
        conn.execute("INSERT INTO leads (assigned_broker_id, property_address) VALUES (%s, 'ok')", (a,))
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            conn.execute("INSERT INTO leads (assigned_broker_id, property_address) VALUES (%s, 'no')", (b,))
