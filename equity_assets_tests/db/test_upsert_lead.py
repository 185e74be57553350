"""`upsert_lead(jsonb)`: the seed's single-row triple-key path."""

import json

import pytest

H1 = "a" * 64
H2 = "b" * 64
H3 = "c" * 64


def upsert(conn, **record) -> str:
    return str(conn.execute("SELECT upsert_lead(%s::jsonb)", (json.dumps(record),)).fetchone()[0])


def lead(conn, lead_id: str) -> dict:
    cur = conn.execute("SELECT * FROM leads WHERE id = %s", (lead_id,))
    names = [d.name for d in cur.description]
    return dict(zip(names, cur.fetchone()))


def count(conn) -> int:
    return conn.execute("SELECT count(*) FROM leads").fetchone()[0]


def test_insert_when_no_key_matches(admin_conn):
    a = upsert(admin_conn, mak="1000000001", property_address="1 OAK ST", equity=100000)
    b = upsert(admin_conn, mak="1000000002", property_address="2 OAK ST")
    assert a != b and count(admin_conn) == 2
    assert lead(admin_conn, a)["campaign_status"] == "new"


def test_mak_match_updates(admin_conn):
    a = upsert(admin_conn, mak="1000000001", property_address="1 OAK ST", equity=100000)
    again = upsert(admin_conn, mak="1000000001", property_address="1 OAK STREET", equity=150000)
    assert again == a and count(admin_conn) == 1
    row = lead(admin_conn, a)
    assert row["equity"] == 150000 and row["property_address"] == "1 OAK STREET"


def test_apn_match_when_mak_absent(admin_conn):
    a = upsert(admin_conn, apn="123-45", property_state="CA", county="ORANGE", first_name="Ann")
    again = upsert(admin_conn, apn="123-45", property_state="CA", county="ORANGE", last_name="Lee")
    assert again == a and count(admin_conn) == 1
    row = lead(admin_conn, a)
    assert (row["first_name"], row["last_name"]) == ("Ann", "Lee")
    # same APN in another county is another parcel
    assert upsert(admin_conn, apn="123-45", property_state="CA", county="KERN") != a


def test_addr_hash_fallback(admin_conn):
    a = upsert(admin_conn, addr_hash=H1, property_city="Irvine")
    assert upsert(admin_conn, addr_hash=H1, property_zip="92618") == a
    row = lead(admin_conn, a)
    assert (row["property_city"], row["property_zip"]) == ("Irvine", "92618")


def test_mak_wins_over_apn_and_hash_and_fills_missing_keys(admin_conn):
    a = upsert(admin_conn, mak="1000000001")
    assert upsert(admin_conn, mak="1000000001", apn="9", property_state="TX", county="HARRIS", addr_hash=H1) == a
    row = lead(admin_conn, a)
    assert (row["apn"], row["county"], row["addr_hash"]) == ("9", "HARRIS", H1)
    # now APN alone and hash alone find the same lead
    assert upsert(admin_conn, apn="9", property_state="TX", county="HARRIS") == a
    assert upsert(admin_conn, addr_hash=H1) == a


def test_null_never_overwrites(admin_conn):
    a = upsert(admin_conn, mak="1000000001", first_name="Ann", equity=5, email="ann@example.com")
    upsert(admin_conn, mak="1000000001", first_name=None, equity=None)
    row = lead(admin_conn, a)
    assert (row["first_name"], row["equity"], row["email"]) == ("Ann", 5, "ann@example.com")


def test_booleans_are_or_merged(admin_conn):
    a = upsert(admin_conn, mak="1000000001", do_not_mail=True, litigator=False)
    upsert(admin_conn, mak="1000000001", do_not_mail=False, litigator=True)
    row = lead(admin_conn, a)
    assert row["do_not_mail"] is True and row["litigator"] is True


def test_arrays_are_unioned(admin_conn):
    a = upsert(admin_conn, mak="1000000001", marketing_lists=["High Equity", "Seniors"], phone="+15551230001")
    upsert(admin_conn, mak="1000000001", marketing_lists=["Seniors", "Absentee"], phone="+15551230002",
           alt_phones=["+15551230003"])
    row = lead(admin_conn, a)
    assert row["marketing_lists"] == ["High Equity", "Seniors", "Absentee"]
    # the new primary phone keeps the old one as an alternate
    assert row["phone"] == "+15551230002"
    assert set(row["alt_phones"]) == {"+15551230001", "+15551230003"}


def test_keys_pointing_at_two_leads_are_recorded_not_raised(admin_conn):
    x = upsert(admin_conn, mak="1000000001", property_address="X")
    y = upsert(admin_conn, apn="77", property_state="FL", county="DADE", property_address="Y")
    z = upsert(admin_conn, addr_hash=H2, property_address="Z")
    # MAK says X, APN says Y, hash says Z: keep the first match, record both clashes
    got = upsert(admin_conn, mak="1000000001", apn="77", property_state="FL", county="DADE", addr_hash=H2,
                 first_name="Merged")
    assert got == x and count(admin_conn) == 3
    conflicts = admin_conn.execute(
        "SELECT key_name, lead_id::text, other_lead_id::text FROM lead_key_conflicts ORDER BY key_name"
    ).fetchall()
    assert conflicts == [("addr_hash", x, z), ("apn", x, y)]
    row_x, row_y = lead(admin_conn, x), lead(admin_conn, y)
    assert row_x["first_name"] == "Merged" and row_x["apn"] is None and row_x["addr_hash"] is None
    assert row_y["apn"] == "77" and row_y["first_name"] is None
    # running it again records nothing new and still does not raise
    assert upsert(admin_conn, mak="1000000001", apn="77", property_state="FL", county="DADE", addr_hash=H2) == x
    assert admin_conn.execute("SELECT count(*) FROM lead_key_conflicts").fetchone()[0] == 2


def test_changed_contact_clears_its_verification(admin_conn):
    a = upsert(admin_conn, mak="1000000001", email="old@example.com")
    admin_conn.execute("UPDATE leads SET email_verified = true WHERE id = %s", (a,))
    upsert(admin_conn, mak="1000000001", email="old@example.com", first_name="Same")
    assert lead(admin_conn, a)["email_verified"] is True
    upsert(admin_conn, mak="1000000001", email="new@example.com")
    row = lead(admin_conn, a)
    assert row["email_verified"] is False and row["alt_emails"] == ["old@example.com"]


def test_pipeline_owned_columns_are_not_taken_from_input(admin_conn):
    a = upsert(admin_conn, mak="1000000001")
    upsert(admin_conn, mak="1000000001", campaign_status="converted", consent=True, lead_score=99)
    row = lead(admin_conn, a)
    assert (row["campaign_status"], row["consent"], row["lead_score"]) == ("new", False, None)


def test_naughty_strings_are_stored_literally(admin_conn):
    naughty = ["'; DROP TABLE leads; --", "=cmd|' /C calc'!A0", "\u202eevil", "null", "a\u200bb"]
    for i, s in enumerate(naughty):
        a = upsert(admin_conn, mak=f"20000000{i:02d}", first_name=s)
        assert lead(admin_conn, a)["first_name"] == s


def test_only_the_pipeline_may_execute_it(admin_conn):
    admin_conn.execute("SELECT set_config('role', 'authenticated', true)")
    with pytest.raises(Exception, match="permission denied"):
        upsert(admin_conn, mak="1000000001")
