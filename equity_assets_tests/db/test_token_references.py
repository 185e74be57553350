"""consent_tokens' lead, checked per statement, holds as the foreign key did: no token without its
lead, a deleted lead takes its tokens with it, a referenced lead keeps its id."""

import uuid

import psycopg

from .test_send_references import fails_as_foreign_key

TOKEN = ("INSERT INTO consent_tokens (lead_id, nonce_hash, expires_at)"
         " SELECT l, md5(gen_random_uuid()::text) || md5(gen_random_uuid()::text), now() + interval '1 day' FROM unnest(%s::uuid[]) l")


def new_lead(conn: psycopg.Connection, address: str = "1 MAIN ST") -> uuid.UUID:
    return conn.execute("INSERT INTO leads (property_address) VALUES (%s) RETURNING id", (address,)).fetchone()[0]


def test_a_token_is_inserted_only_for_an_existing_lead(admin_conn):
    lead, other = new_lead(admin_conn), new_lead(admin_conn, "2 MAIN ST")
    # one bad row among good ones is enough to refuse the statement
    assert fails_as_foreign_key(admin_conn, TOKEN, ([lead, uuid.uuid4()],))
    assert not fails_as_foreign_key(admin_conn, TOKEN, ([lead, other],))
    assert admin_conn.execute("SELECT count(*) FROM consent_tokens").fetchone()[0] == 2


def test_a_token_moved_to_another_lead_is_checked(admin_conn):
    lead, other = new_lead(admin_conn), new_lead(admin_conn, "2 MAIN ST")
    admin_conn.execute(TOKEN, ([lead],))
    move = "UPDATE consent_tokens SET lead_id = %s WHERE lead_id = %s"
    assert fails_as_foreign_key(admin_conn, move, (uuid.uuid4(), lead))
    assert not fails_as_foreign_key(admin_conn, move, (other, lead))
    assert not fails_as_foreign_key(admin_conn, "UPDATE consent_tokens SET used_at = now()", ())


def test_deleting_leads_deletes_their_tokens_only(admin_conn):
    lead, other = new_lead(admin_conn), new_lead(admin_conn, "2 MAIN ST")
    admin_conn.execute(TOKEN, ([lead, lead, other],))
    admin_conn.execute("DELETE FROM leads WHERE id = %s", (lead,))
    assert admin_conn.execute("SELECT lead_id FROM consent_tokens").fetchall() == [(other,)]


def test_a_lead_with_tokens_keeps_its_id(admin_conn):
    lead = new_lead(admin_conn)
    admin_conn.execute(TOKEN, ([lead],))
    assert fails_as_foreign_key(admin_conn, "UPDATE leads SET id = %s WHERE id = %s", (uuid.uuid4(), lead))
    other = new_lead(admin_conn, "2 MAIN ST")
    assert not fails_as_foreign_key(admin_conn, "UPDATE leads SET id = %s WHERE id = %s", (uuid.uuid4(), other))
