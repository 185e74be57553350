"""campaign_sends' references (lead, broker, consent token), checked per statement, hold as
foreign keys would: no send pointing at nothing, no referenced row deleted or renumbered."""

import uuid
from datetime import date

import psycopg
import pytest

DAY = date(2026, 1, 5)


def make_send(conn: psycopg.Connection) -> dict[str, uuid.UUID]:
    """A lead, a broker, a token and the send that references the three."""
    broker = conn.execute("INSERT INTO brokers (name) VALUES ('B') RETURNING id").fetchone()[0]
    lead = conn.execute("INSERT INTO leads (property_address) VALUES ('1 MAIN ST') RETURNING id").fetchone()[0]
    token = conn.execute(
        "INSERT INTO consent_tokens (lead_id, nonce_hash, expires_at) VALUES (%s, repeat('a', 64), now() + interval '1 day')"
        " RETURNING id", (lead,)).fetchone()[0]
    conn.execute("INSERT INTO campaign_sends (batch_date, lead_id, broker_id, consent_token_id) VALUES (%s, %s, %s, %s)",
                 (DAY, lead, broker, token))
    return {"lead": lead, "broker": broker, "token": token}


def fails_as_foreign_key(conn: psycopg.Connection, statement: str, params: tuple) -> bool:
    with conn.transaction():
        try:
            with conn.transaction():
                conn.execute(statement, params)
        except psycopg.errors.ForeignKeyViolation:
            return True
    return False


def test_a_send_is_inserted_only_with_its_lead_broker_and_token(admin_conn):
    ref = make_send(admin_conn)
    insert = ("INSERT INTO campaign_sends (batch_date, lead_id, broker_id, consent_token_id)"
              " SELECT %s, l, %s, %s FROM unnest(%s::uuid[]) l")
    other_lead = admin_conn.execute("INSERT INTO leads (property_address) VALUES ('2 MAIN ST') RETURNING id").fetchone()[0]
    # one bad row among good ones is enough to refuse the statement
    assert fails_as_foreign_key(admin_conn, insert, (DAY, ref["broker"], None, [other_lead, uuid.uuid4()]))
    assert fails_as_foreign_key(admin_conn, insert, (DAY, uuid.uuid4(), None, [other_lead]))
    assert fails_as_foreign_key(admin_conn, insert, (DAY, ref["broker"], uuid.uuid4(), [other_lead]))
    assert not fails_as_foreign_key(admin_conn, insert, (DAY, ref["broker"], ref["token"], [other_lead]))
    assert admin_conn.execute("SELECT count(*) FROM campaign_sends").fetchone()[0] == 2


def test_a_changed_reference_is_checked_and_a_status_change_is_not_refused(admin_conn):
    ref = make_send(admin_conn)
    update = "UPDATE campaign_sends SET {} WHERE lead_id = %s"
    assert fails_as_foreign_key(admin_conn, update.format("consent_token_id = %s"), (uuid.uuid4(), ref["lead"]))
    assert fails_as_foreign_key(admin_conn, update.format("broker_id = %s"), (uuid.uuid4(), ref["lead"]))
    assert not fails_as_foreign_key(admin_conn, update.format("status = 'pushed', consent_token_id = %s"),
                                    (ref["token"], ref["lead"]))
    assert admin_conn.execute("SELECT status FROM campaign_sends").fetchone()[0] == "pushed"


@pytest.mark.parametrize(("table", "key"), [("leads", "lead"), ("brokers", "broker"), ("consent_tokens", "token")])
def test_a_referenced_row_is_neither_deleted_nor_renumbered(admin_conn, table, key):
    ref = make_send(admin_conn)
    assert fails_as_foreign_key(admin_conn, f"DELETE FROM {table} WHERE id = %s", (ref[key],))
    assert fails_as_foreign_key(admin_conn, f"UPDATE {table} SET id = %s WHERE id = %s", (uuid.uuid4(), ref[key]))
    assert admin_conn.execute(f"SELECT count(*) FROM {table} WHERE id = %s", (ref[key],)).fetchone()[0] == 1
    # once the send is gone, so is the protection
    admin_conn.execute("DELETE FROM campaign_sends WHERE lead_id = %s", (ref["lead"],))
    assert not fails_as_foreign_key(admin_conn, f"DELETE FROM {table} WHERE id = %s", (ref[key],))
