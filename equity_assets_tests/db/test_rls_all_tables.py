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
}
# relations brokers may write at all (column grants + policies); everything else is read-only
BROKER_WRITABLE = {"leads"}
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
        assert broker_relations(conn) == set(OWNER_COLUMN)
        assert writable_relations(conn) == BROKER_WRITABLE


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
