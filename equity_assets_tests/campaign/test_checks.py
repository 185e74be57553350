"""The checks' queries catch what they guard against (data made by hand)."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

import psycopg

from equity_assets.campaign.checks import (
    brokers_over_cap,
    leads_in_two_batches,
    stale_queued_sends,
    suppressed_or_dnc_sends,
)

from .helpers import add_broker, add_leads, email_of, suppress

MON, TUE = date(2026, 11, 16), date(2026, 11, 17)


def add_send(conn: psycopg.Connection, day: date, lead: uuid.UUID, broker: uuid.UUID, status: str = "queued") -> None:
    conn.execute("INSERT INTO campaign_sends (batch_date, lead_id, broker_id, status) VALUES (%s, %s, %s, %s)",
                 (day, lead, broker, status))


def test_cap_check_flags_a_day_over_the_brokers_cap(db):
    broker = add_broker(db, cap=2)
    leads = add_leads(db, broker, [1, 2, 3])
    for lead in leads[:2]:
        add_send(db, MON, lead, broker)
    assert brokers_over_cap(db, [MON]).count == 0
    add_send(db, MON, leads[2], broker)
    over = brokers_over_cap(db, [MON])
    assert over.count == 1 and over.sample == [f"2026-11-16 {broker}"]
    assert brokers_over_cap(db, [TUE]).count == 0  # other dates are not this run's business


def test_two_batch_check_flags_a_lead_sent_on_two_dates(admin_conn):
    broker = add_broker(admin_conn)
    lead = add_leads(admin_conn, broker, [1])[0]
    add_send(admin_conn, MON, lead, broker)
    assert leads_in_two_batches(admin_conn, [MON]).count == 0
    # Only possible if the UNIQUE (lead_id) constraint were lost; the transaction is rolled back.
    admin_conn.execute("ALTER TABLE campaign_sends DROP CONSTRAINT campaign_sends_lead_id_key")
    add_send(admin_conn, TUE, lead, broker)
    found = leads_in_two_batches(admin_conn, [TUE])
    assert found.count == 1 and found.sample == [str(lead)]


def test_suppression_check_flags_pending_sends_and_sends_batched_while_suppressed(db):
    broker = add_broker(db)
    pending, opted_out_later, dnc, batched_suppressed, withdrawn = add_leads(db, broker, [1, 2, 3, 4, 5])
    for lead in (opted_out_later, batched_suppressed):
        add_send(db, MON, lead, broker, "pushed")
    add_send(db, MON, pending, broker)
    add_send(db, MON, dnc, broker)
    add_send(db, MON, withdrawn, broker, "failed")
    assert suppressed_or_dnc_sends(db, [MON]).count == 0

    suppress(db, email_of(db, pending))
    suppress(db, email_of(db, opted_out_later))  # after its email left: fine
    suppress(db, email_of(db, withdrawn))  # already withdrawn: fine
    db.execute("UPDATE leads SET campaign_status = 'do_not_contact' WHERE id = %s", (dnc,))
    db.execute("INSERT INTO suppression_list (channel, value, reason, created_at) VALUES ('email', %s, 'x', now() - interval '1 day')",
               (email_of(db, batched_suppressed),))

    found = suppressed_or_dnc_sends(db, [MON])
    assert found.count == 3 and set(found.sample) == {str(pending), str(dnc), str(batched_suppressed)}


def test_stale_check_flags_sends_still_queued_hours_after_their_day(db):
    broker = add_broker(db)
    old, pushed, withdrawn, today = add_leads(db, broker, [1, 2, 3, 4])
    add_send(db, MON, old, broker)
    add_send(db, MON, pushed, broker, "pushed")
    add_send(db, MON, withdrawn, broker, "failed")
    add_send(db, date.today() + timedelta(days=1), today, broker)  # not due yet

    found = stale_queued_sends(db)

    assert found.count == 1 and found.sample == [f"2026-11-16 {old}"]
    db.execute("UPDATE campaign_sends SET status = 'pushed' WHERE lead_id = %s", (old,))
    assert stale_queued_sends(db).count == 0


def test_a_send_is_stale_only_after_its_grace_hours(db):
    broker = add_broker(db)
    (lead,) = add_leads(db, broker, [1])
    # 06:00 PT today in the database's own clock; grace of 0 h vs 100 h around it
    add_send(db, date.today() - timedelta(days=1), lead, broker)
    assert stale_queued_sends(db, grace_hours=0).count == 1
    assert stale_queued_sends(db, grace_hours=100).count == 0
