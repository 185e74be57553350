"""Constraints, triggers and append-only tables behave as the design says."""

import time

import psycopg
import pytest


def insert_lead(conn, **values) -> str:
    cols = ", ".join(values)
    marks = ", ".join(["%s"] * len(values))
    return str(conn.execute(f"INSERT INTO leads ({cols}) VALUES ({marks}) RETURNING id", tuple(values.values())).fetchone()[0])


def test_added_to_campaign_at_set_on_first_activation_and_never_moved(admin_conn):
    lead = insert_lead(admin_conn, property_address="1 MAIN ST")
    assert admin_conn.execute("SELECT added_to_campaign_at FROM leads WHERE id = %s", (lead,)).fetchone()[0] is None
    admin_conn.execute("UPDATE leads SET campaign_status = 'queued' WHERE id = %s", (lead,))
    assert admin_conn.execute("SELECT added_to_campaign_at FROM leads WHERE id = %s", (lead,)).fetchone()[0] is None
    admin_conn.commit()
    admin_conn.execute("UPDATE leads SET campaign_status = 'active' WHERE id = %s", (lead,))
    admin_conn.commit()
    first = admin_conn.execute("SELECT added_to_campaign_at FROM leads WHERE id = %s", (lead,)).fetchone()[0]
    assert first is not None
    time.sleep(0.01)
    for status in ("replied", "active"):
        admin_conn.execute("UPDATE leads SET campaign_status = %s WHERE id = %s", (status, lead))
        admin_conn.commit()
    admin_conn.execute("UPDATE leads SET added_to_campaign_at = now() + interval '1 day' WHERE id = %s", (lead,))
    admin_conn.commit()
    assert admin_conn.execute("SELECT added_to_campaign_at FROM leads WHERE id = %s", (lead,)).fetchone()[0] == first


def test_updated_at_is_maintained(admin_conn):
    lead = insert_lead(admin_conn, property_address="2 MAIN ST")
    admin_conn.commit()
    before = admin_conn.execute("SELECT updated_at FROM leads WHERE id = %s", (lead,)).fetchone()[0]
    admin_conn.execute("UPDATE leads SET broker_notes = 'x' WHERE id = %s", (lead,))
    admin_conn.commit()
    after = admin_conn.execute("SELECT updated_at FROM leads WHERE id = %s", (lead,)).fetchone()[0]
    assert after > before


@pytest.mark.parametrize("statement", [
    "UPDATE pipeline_events SET event_type = 'tampered'",
    "DELETE FROM pipeline_events",
    "TRUNCATE pipeline_events",
])
def test_pipeline_events_is_append_only(admin_conn, statement):
    admin_conn.execute("INSERT INTO pipeline_events (event_type) VALUES ('upload_received')")
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
        admin_conn.execute(statement)


@pytest.mark.parametrize("statement", [
    "UPDATE lead_consent_audit SET decision = 'granted'",
    "DELETE FROM lead_consent_audit",
])
def test_lead_consent_audit_is_append_only(admin_conn, statement):
    lead = insert_lead(admin_conn, property_address="3 MAIN ST")
    admin_conn.execute("INSERT INTO lead_consent_audit (lead_id, decision) VALUES (%s, 'rejected')", (lead,))
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
        admin_conn.execute(statement)


def test_campaign_status_is_an_enum(admin_conn):
    with pytest.raises(psycopg.errors.InvalidTextRepresentation):
        insert_lead(admin_conn, property_address="4 MAIN ST", campaign_status="New")


def test_dedupe_keys_are_unique_only_when_present(admin_conn):
    insert_lead(admin_conn, property_address="a")
    insert_lead(admin_conn, property_address="b")  # two leads without keys are fine
    insert_lead(admin_conn, mak="1234567890")
    with pytest.raises(psycopg.errors.UniqueViolation):
        insert_lead(admin_conn, mak="1234567890")


def test_apn_key_is_scoped_by_state_and_county(admin_conn):
    insert_lead(admin_conn, apn="DERB M:11 B:4 L:45", property_state="CT", county="NEW HAVEN")
    insert_lead(admin_conn, apn="DERB M:11 B:4 L:45", property_state="CT", county="FAIRFIELD")
    with pytest.raises(psycopg.errors.UniqueViolation):
        insert_lead(admin_conn, apn="DERB M:11 B:4 L:45", property_state="CT", county="NEW HAVEN")


def test_feeder_query_uses_the_partial_index(admin_conn):
    # A realistic, analyzed table (20 brokers, a tenth of the leads queued), so the plan does not
    # depend on statistics that rows of earlier tests left behind.
    brokers = [admin_conn.execute("INSERT INTO brokers (name, territory_states) VALUES (%s, '{CA}') RETURNING id",
                                  (f"broker {n}",)).fetchone()[0] for n in range(20)]
    admin_conn.execute(
        """INSERT INTO leads (property_address, assigned_broker_id, campaign_status, email_verified, lead_score)
           SELECT 'lead ' || n, (%s::uuid[])[1 + n %% 20],
                  (CASE WHEN n %% 10 = 0 THEN 'queued' ELSE 'new' END)::campaign_status, n %% 3 = 0, n %% 100
           FROM generate_series(1, 5000) AS n""",
        (brokers,),
    )
    admin_conn.execute("ANALYZE leads")
    admin_conn.execute("SET enable_seqscan = off")
    admin_conn.execute("SET enable_sort = off")
    plan = "\n".join(r[0] for r in admin_conn.execute(
        """EXPLAIN SELECT id FROM leads
           WHERE assigned_broker_id = %s AND campaign_status = 'queued' AND email_verified
           ORDER BY lead_score DESC NULLS LAST LIMIT 250""",
        (brokers[0],),
    ))
    assert "leads_feeder_idx" in plan, plan
