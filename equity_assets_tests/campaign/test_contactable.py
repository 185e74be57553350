"""`contactable_leads`: incremental refresh equals a full rebuild, and brokers can never read it."""

from __future__ import annotations

import json
import time
import uuid

import psycopg
import pytest

from .helpers import add_broker, add_leads, email_of, materialization_metadata, refresh, suppress

NEW_TABLES = ("contactable_leads", "contactable_refresh_state", "contactable_recheck_emails")


def contactable(conn: psycopg.Connection) -> set[uuid.UUID]:
    return {r[0] for r in conn.execute("SELECT lead_id FROM contactable_leads")}


def test_first_refresh_builds_then_later_ones_report_changes(db, campaign):
    broker, other = add_broker(db), add_broker(db)
    leads = add_leads(db, broker, [1, 2, 3, 4])
    add_leads(db, broker, [5], verified=False)

    first = materialization_metadata(refresh(campaign), "contactable_leads")
    assert (first["mode"], first["size"], first["added"], first["removed"]) == ("full", 4, 4, 0)

    db.execute("UPDATE leads SET campaign_status = 'do_not_contact' WHERE id = %s", (leads[0],))
    db.execute("UPDATE leads SET assigned_broker_id = %s WHERE id = %s", (other, leads[1]))
    db.execute("UPDATE leads SET lead_score = 50 WHERE id = %s", (leads[2],))  # membership unchanged
    added = add_leads(db, broker, [6, 7])
    second = materialization_metadata(refresh(campaign), "contactable_leads")

    assert (second["mode"], second["added"], second["removed"], second["updated"]) == ("incremental", 2, 1, 1)
    assert second["scanned"] >= 5
    assert second["size"] == 5 == len(contactable(db))
    assert contactable(db) == {*leads[1:], *added}
    again = materialization_metadata(refresh(campaign), "contactable_leads")
    assert (again["added"], again["removed"], again["updated"], again["size"]) == (0, 0, 0, 5)


def test_incremental_refreshes_track_every_kind_of_change_exactly(db, campaign):
    a, b = add_broker(db), add_broker(db)
    leads = add_leads(db, a, [float(s) for s in range(12)])
    lifted = add_leads(db, a, [50])[0]
    edited = add_leads(db, a, [51])[0]
    suppress(db, email_of(db, lifted))
    suppress(db, email_of(db, edited))
    refresh(campaign)
    assert lifted not in contactable(db) and edited not in contactable(db)

    db.execute("UPDATE leads SET assigned_broker_id = NULL WHERE id = %s", (leads[0],))
    db.execute("UPDATE leads SET assigned_broker_id = %s WHERE id = %s", (b, leads[1]))
    db.execute("UPDATE leads SET email_verified = false WHERE id = %s", (leads[2],))
    db.execute("UPDATE leads SET campaign_status = 'replied' WHERE id = %s", (leads[3],))  # leaves the set
    db.execute("UPDATE leads SET campaign_status = 'active' WHERE id = %s", (leads[4],))
    suppress(db, email_of(db, leads[5]))  # no change to the lead row itself
    db.execute("DELETE FROM suppression_list WHERE value = %s", (email_of(db, lifted),))  # unsuppressed
    db.execute("UPDATE suppression_list SET value = 'someone-else@example.com' WHERE value = %s",
               (email_of(db, edited),))
    suppress(db, email_of(db, leads[6]), expires_at="now")  # already over: never counts
    meta = materialization_metadata(refresh(campaign), "contactable_leads")

    expected = {leads[1], leads[4], *leads[6:], lifted, edited}
    assert contactable(db) == expected and meta["size"] == len(expected)
    broker_of = dict(db.execute("SELECT lead_id, broker_id FROM contactable_leads"))
    assert broker_of[leads[1]] == b
    # a full rebuild finds nothing left to fix
    full = materialization_metadata(refresh(campaign, full_rebuild=True), "contactable_leads")
    assert (full["mode"], full["added"], full["removed"], full["updated"], full["size"]) == (
        "full", 0, 0, 0, len(expected))


def test_a_suppression_that_expires_releases_its_lead(db, campaign):
    broker = add_broker(db)
    lead = add_leads(db, broker, [1])[0]
    db.execute("INSERT INTO suppression_list (channel, value, reason, expires_at) "
               "VALUES ('email', %s, 'test', now() + interval '1 day')", (email_of(db, lead),))
    refresh(campaign)
    assert contactable(db) == set()
    # Time passes without a row event: the entry, live at that refresh, expires just after it.
    # (Triggers off for the edit, so only the refresh's own expiry scan can notice.)
    db.execute("SET session_replication_role = replica")
    db.execute("UPDATE suppression_list SET expires_at = "
               "(SELECT refreshed_at FROM contactable_refresh_state) + interval '1 microsecond'")
    db.execute("SET session_replication_role = DEFAULT")
    assert db.execute("SELECT count(*) FROM contactable_recheck_emails").fetchone()[0] == 0
    refresh(campaign, lookback_minutes=0)
    assert contactable(db) == {lead}


@pytest.mark.parametrize(("lookback_minutes", "caught"), [(60, True), (0, False)])
def test_lookback_catches_a_transaction_that_commits_after_the_refresh(
    db, campaign, campaign_db, lookback_minutes, caught
):
    broker = add_broker(db)
    lead = add_leads(db, broker, [1])[0]
    db.execute("UPDATE leads SET updated_at = now() - interval '1 day'")
    refresh(campaign, full_rebuild=True)
    with psycopg.connect(campaign_db.admin_dsn) as slow:
        slow.execute("SELECT now()")  # its updated_at will be this instant, before the refresh below
        time.sleep(0.05)
        refresh(campaign, lookback_minutes=lookback_minutes)
        slow.execute("UPDATE leads SET campaign_status = 'do_not_contact' WHERE id = %s", (lead,))
        slow.commit()
    refresh(campaign)
    assert (lead not in contactable(db)) is caught


def test_broker_roles_can_never_read_the_contactable_set(db, campaign, admin_conn):
    broker = add_broker(db)
    add_leads(db, broker, [1, 2])
    refresh(campaign)
    forced = dict(admin_conn.execute(
        "SELECT relname, relrowsecurity AND relforcerowsecurity FROM pg_class WHERE relname = ANY(%s)",
        (list(NEW_TABLES),)))
    assert forced == {t: True for t in NEW_TABLES}
    for role in ("authenticated", "anon"):
        with admin_conn.transaction():
            admin_conn.execute("SELECT set_config('role', %s, true)", (role,))
            admin_conn.execute("SELECT set_config('request.jwt.claims', %s, true)", (json.dumps({"sub": str(broker)}),))
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                admin_conn.execute("SELECT count(*) FROM contactable_leads")
            raise_rollback(admin_conn)
    # Even if someone granted it by mistake, forced RLS with no policy shows nothing.
    with admin_conn.transaction():
        admin_conn.execute("GRANT SELECT ON contactable_leads TO authenticated")
        admin_conn.execute("SELECT set_config('role', 'authenticated', true)")
        admin_conn.execute("SELECT set_config('request.jwt.claims', %s, true)", (json.dumps({"sub": str(broker)}),))
        assert admin_conn.execute("SELECT count(*) FROM contactable_leads").fetchone()[0] == 0
        raise_rollback(admin_conn)
    assert admin_conn.execute("SELECT has_table_privilege('authenticated', 'contactable_leads', 'SELECT')").fetchone()[0] is False


def raise_rollback(conn: psycopg.Connection) -> None:
    raise psycopg.Rollback()
