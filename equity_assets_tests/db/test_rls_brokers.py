"""Row-level security of the broker-facing tables: billing reports, settings, secrets, token log."""

import uuid

import psycopg
import pytest

from .test_rls import act_as, brokers, visible  # noqa: F401 (fixture)


def _lead_of(conn, broker):
    return conn.execute("SELECT id FROM leads WHERE assigned_broker_id = %s LIMIT 1", (broker,)).fetchone()[0]


@pytest.fixture
def fresh(admin_conn, brokers):
    """The brokers with their billing events removed (the shared fixture adds appointments)."""
    admin_conn.execute("DELETE FROM billing_events")
    admin_conn.commit()
    return brokers


def test_broker_reports_an_application_on_their_own_lead_only(admin_conn, fresh):
    a, b = fresh
    mine, theirs = _lead_of(admin_conn, a), _lead_of(admin_conn, b)
    act_as(admin_conn, "authenticated", a)
    admin_conn.execute("INSERT INTO billing_events (broker_id, lead_id, event_type, source) "
                       "VALUES (%s, %s, 'application_submitted', 'portal')", (a, mine))
    for broker, lead, event_type in ((a, theirs, "application_submitted"), (b, theirs, "loan_funded"),
                                     (a, mine, "appointment_set")):
        admin_conn.execute("SAVEPOINT s")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            admin_conn.execute("INSERT INTO billing_events (broker_id, lead_id, event_type, source) "
                               "VALUES (%s, %s, %s, 'portal')", (broker, lead, event_type))
        admin_conn.execute("ROLLBACK TO SAVEPOINT s")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):  # prices are the pipeline's
        admin_conn.execute("INSERT INTO billing_events (broker_id, lead_id, event_type, source, amount) "
                           "VALUES (%s, %s, 'loan_funded', 'portal', 0)", (a, mine))


def test_broker_edits_only_their_own_settings(admin_conn, brokers):
    a, b = brokers
    act_as(admin_conn, "authenticated", a)
    assert admin_conn.execute("UPDATE brokers SET notify_url = 'https://a.example/h'").rowcount == 1
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        admin_conn.execute("UPDATE brokers SET daily_cap = 9999")
    admin_conn.rollback()
    act_as(admin_conn, "authenticated", a)
    assert admin_conn.execute("UPDATE brokers SET notify_url = 'x' WHERE id = %s", (b,)).rowcount == 0
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
        admin_conn.execute("INSERT INTO broker_cap_requests (broker_id, requested_cap) VALUES (%s, 10)", (b,))


def test_rotation_touches_only_the_callers_secrets(admin_conn, brokers):
    a, b = brokers
    admin_conn.execute("INSERT INTO broker_notify_secrets (broker_id, secret) VALUES (%s, 'whsec_b')", (b,))
    admin_conn.commit()
    act_as(admin_conn, "authenticated", a)
    admin_conn.execute("SELECT rotate_notify_secret('whsec_a')")
    assert len(admin_conn.execute("SELECT * FROM my_notify_secret_log()").fetchall()) == 1
    admin_conn.commit()
    rows = admin_conn.execute("SELECT broker_id, secret, retires_at FROM broker_notify_secrets ORDER BY secret").fetchall()
    assert rows == [(a, "whsec_a", None), (b, "whsec_b", None)]  # B's secret was not retired


def test_token_log_without_nonce_hashes(admin_conn, brokers):
    a, b = brokers
    for broker in (a, b):
        admin_conn.execute("INSERT INTO consent_tokens (lead_id, nonce_hash, expires_at) VALUES (%s, %s, now() + interval '7 days')",
                           (_lead_of(admin_conn, broker), uuid.uuid4().hex * 2))
    admin_conn.commit()
    act_as(admin_conn, "authenticated", a)
    assert admin_conn.execute("SELECT count(*) FROM consent_tokens").fetchone()[0] == 1
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        admin_conn.execute("SELECT nonce_hash FROM consent_tokens")


def test_price_list_is_readable_and_invoice_revisions_are_private(admin_conn, brokers):
    a, b = brokers
    inv = admin_conn.execute("INSERT INTO invoices (broker_id, period_start, period_end) VALUES (%s, '2026-11-01', "
                             "'2026-11-30') RETURNING id", (b,)).fetchone()[0]
    admin_conn.execute("INSERT INTO invoice_revisions (invoice_id, revision, broker_id, total, line_items, event_count, "
                       "reason) VALUES (%s, 1, %s, 0, '[]', 0, 'test')", (inv, b))
    admin_conn.commit()
    act_as(admin_conn, "authenticated", a)
    assert visible(admin_conn, "billing_price_list") >= 3
    assert visible(admin_conn, "invoice_revisions") == 0
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        admin_conn.execute("UPDATE billing_price_list SET unit_price = 0")


def test_no_function_is_executable_by_public(admin_conn):
    rows = admin_conn.execute(
        "SELECT p.proname FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace "
        "AND p.proname IN ('rotate_notify_secret', 'my_notify_secret_log') "
        "AND has_function_privilege('anon', p.oid, 'EXECUTE')").fetchall()
    assert rows == []


def test_a_deactivated_broker_sees_nothing(admin_conn, brokers):
    a, _ = brokers
    mine = _lead_of(admin_conn, a)
    admin_conn.execute("UPDATE brokers SET active = false WHERE id = %s", (a,))
    admin_conn.commit()
    act_as(admin_conn, "authenticated", a)
    for table in ("leads", "billing_events"):
        assert visible(admin_conn, table) == 0, table
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
        admin_conn.execute("INSERT INTO billing_events (broker_id, lead_id, event_type, source) "
                           "VALUES (%s, %s, 'loan_funded', 'portal')", (a, mine))
    admin_conn.rollback()
    act_as(admin_conn, "authenticated", a)
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
        admin_conn.execute("INSERT INTO leads (assigned_broker_id, property_address) VALUES (%s, 'x')", (a,))
