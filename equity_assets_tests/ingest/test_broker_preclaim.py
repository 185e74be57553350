"""A broker cannot pre-claim a future lead: broker writes never reach pipeline identity.

The attack: a broker inserts a bare lead carrying a parcel key (state, county, APN) of a property
outside their territory; a later upload brings that parcel with the owner's name, e-mail, phone
and mailing address. If the merge matched the broker's row, the broker would read all of it.
"""

import json
import uuid

import psycopg
import pytest

from .test_ingest_assets import register_upload, run_ingest

UPLOAD = (
    "Address,City,State,Zip,County,APN,Owner 1 First Name,Owner 1 Last Name,Mailing Address,Mailing City,"
    "Mailing State,Mailing Zip,Email,Phone\n"
    "9 Oak Ave,Austin,TX,78701,Travis,0042 17:3,Victoria,Owner,PO Box 77,Austin,TX,78702,"
    "victoria.owner@example.com,(512) 555-0142\n"
)
OWNER_PII = {"Victoria", "Owner", "PO Box 77", "victoria.owner@example.com", "+15125550142"}


@pytest.fixture
def broker(clean_db):
    """A California broker (the parcel is in Texas)."""
    broker_id = uuid.uuid4()
    with psycopg.connect(clean_db.admin_dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO brokers (id, name, territory_states) VALUES (%s, 'Mallory', '{CA}')", (broker_id,))
    return broker_id


def as_broker(clean_db, broker_id, statement, params=()):
    """Run one statement as the broker (role authenticated + JWT claims) and commit it."""
    with psycopg.connect(clean_db.admin_dsn) as conn:
        conn.execute("SELECT set_config('role', 'authenticated', true)")
        conn.execute("SELECT set_config('request.jwt.claims', %s, true)", (json.dumps({"sub": str(broker_id)}),))
        rows = conn.execute(statement, params)
        out = rows.fetchall() if rows.description else None
        conn.commit()
        return out


def broker_view(clean_db, broker_id):
    """Every value of every lead the broker can read."""
    rows = as_broker(clean_db, broker_id, "SELECT to_jsonb(l) FROM leads l")
    return [r[0] for r in rows]


def ingest(postgres, tmp_path):
    path = tmp_path / f"{uuid.uuid4().hex}.csv"
    path.write_text(UPLOAD)
    with postgres.connection() as conn:
        upload_id = register_upload(conn, path)
    run_ingest(postgres, upload_id)
    return upload_id


def test_the_literal_attack_is_refused_at_insert(clean_db, broker):
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        as_broker(clean_db, broker, "INSERT INTO leads (assigned_broker_id, property_state, county, apn) "
                                    "VALUES (%s, 'TX', 'Travis', '0042 17:3')", (broker,))
    for key in ("mak", "addr_hash"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            as_broker(clean_db, broker, f"INSERT INTO leads (assigned_broker_id, {key}) VALUES (%s, %s)",
                      (broker, "1234567890" if key == "mak" else "a" * 64))


def test_a_broker_lead_of_the_same_property_receives_nothing_from_an_upload(postgres, clean_db, broker, tmp_path):
    # everything a broker may write about the parcel
    as_broker(clean_db, broker, "INSERT INTO leads (assigned_broker_id, property_address, property_city, "
                                "property_state, property_zip, county) "
                                "VALUES (%s, '9 Oak Ave', 'Austin', 'TX', '78701', 'Travis')", (broker,))
    upload_id = ingest(postgres, tmp_path)
    seen = broker_view(clean_db, broker)
    assert len(seen) == 1 and seen[0]["broker_created"] is True
    leaked = {str(v) for row in seen for v in row.values()} & OWNER_PII
    assert not leaked
    with postgres.connection() as conn:
        owner_lead, matched_on, assigned = conn.execute(
            "SELECT l.id, ls.matched_on, l.assigned_broker_id FROM lead_sources ls JOIN leads l ON l.id = ls.lead_id "
            "WHERE ls.upload_id = %s", (upload_id,)).fetchone()
    assert matched_on == "new" and assigned is None and str(owner_lead) != seen[0]["id"]


def test_keys_on_a_broker_row_are_never_matched(postgres, clean_db, broker, tmp_path):
    """Defence in depth: even a broker row holding every key (e.g. written before the column
    grants were narrowed) is invisible to key matching, uniqueness and folding. The keys are the
    upload's own (county as the normalizer stores it), so matching on them would be the attack."""
    as_broker(clean_db, broker, "INSERT INTO leads (assigned_broker_id, property_address) VALUES (%s, 'bait')",
              (broker,))
    with psycopg.connect(clean_db.admin_dsn, autocommit=True) as conn:
        conn.execute("UPDATE leads SET property_state = 'TX', county = 'TRAVIS', apn = '0042 17:3', "
                     "mak = '1234567890', addr_hash = repeat('a', 64) WHERE broker_created")
    ingest(postgres, tmp_path)
    seen = broker_view(clean_db, broker)
    assert [r["property_address"] for r in seen] == ["bait"] and seen[0]["first_name"] is None
    assert not {str(v) for v in seen[0].values()} & OWNER_PII
    with postgres.connection() as conn:
        owner, state, county, apn, addr_hash = conn.execute(
            "SELECT id, property_state, county, apn, addr_hash FROM leads WHERE NOT broker_created").fetchone()
        bait = conn.execute("SELECT id FROM leads WHERE broker_created").fetchone()[0]
        # the single-row path ignores it too: with the bait's MAK and the owner's other keys, the
        # record lands on the owner's lead
        same = conn.execute("SELECT upsert_lead(%s::jsonb)", (json.dumps(
            {"property_state": state, "county": county, "apn": apn, "mak": "1234567890",
             "first_name": "Victoria"}),)).fetchone()[0]
        assert same == owner and (state, county, apn) == ("TX", "TRAVIS", "0042 17:3") and addr_hash
        # and folding (verification's MAK twins) refuses to touch it, in either direction
        assert conn.execute("SELECT fold_lead(%s, %s, 'mak', 'test')", (owner, bait)).fetchone()[0] is None
        assert conn.execute("SELECT fold_lead(%s, %s, 'mak', 'test')", (bait, owner)).fetchone()[0] is None
        assert conn.execute("SELECT count(*) FROM leads").fetchone()[0] == 2
    assert not {str(v) for r in broker_view(clean_db, broker) for v in r.values()} & OWNER_PII


def test_pipeline_inserts_are_not_marked_broker_created(postgres):
    with postgres.connection() as conn:
        conn.execute("INSERT INTO leads (property_address) VALUES ('pipeline')")
        assert conn.execute("SELECT broker_created FROM leads").fetchone()[0] is False
