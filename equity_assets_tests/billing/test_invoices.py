"""Monthly invoices from billing events: waterfall tiers, idempotent re-runs, revisions after a late event."""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal

import dagster as dg
import psycopg
import pytest

from equity_assets.billing.assets import billing_invoices
from equity_assets.billing.checks import invoice_lines_add_up
from equity_assets.billing.pricing import Event, Tier, Unpriced, price_for, price_month


def _tiers() -> list[Tier]:
    return [Tier("appointment_set", 1, 2, Decimal("100"), date(2026, 1, 1), date(2026, 6, 1)),
            Tier("appointment_set", 3, None, Decimal("80"), date(2026, 1, 1), date(2026, 6, 1)),
            Tier("appointment_set", 1, None, Decimal("90"), date(2026, 6, 1), None)]


def test_tiers_by_rank_and_effective_date():
    tiers = _tiers()
    assert price_for(tiers, "appointment_set", date(2026, 5, 31), 2).unit_price == 100
    assert price_for(tiers, "appointment_set", date(2026, 5, 31), 3).unit_price == 80
    assert price_for(tiers, "appointment_set", date(2026, 6, 1), 1).unit_price == 90
    with pytest.raises(Unpriced):
        price_for(tiers, "loan_funded", date(2026, 5, 1), 1)
    events = [Event(str(i), "appointment_set", date(2026, 5, 10)) for i in range(4)]
    items, prices, unpriced = price_month(tiers, events)
    assert [(i["tier"], i["quantity"], i["amount"]) for i in items] == [("1-2", 2, "200.00"), ("3+", 2, "160.00")]
    assert not unpriced and len(prices) == 4


@pytest.fixture
def broker_with_leads(admin_conn):
    broker = uuid.uuid4()
    admin_conn.execute("INSERT INTO brokers (id, name) VALUES (%s, 'Billing Broker')", (broker,))
    leads = [admin_conn.execute("INSERT INTO leads (assigned_broker_id) VALUES (%s) RETURNING id", (broker,)).fetchone()[0]
             for _ in range(30)]
    admin_conn.commit()
    return broker, leads


def _event(conn, broker, lead, event_type, at):
    conn.execute("INSERT INTO billing_events (broker_id, lead_id, event_type, occurred_at) VALUES (%s, %s, %s, %s)",
                 (broker, lead, event_type, at))
    conn.commit()


def _materialize(postgres, month: str) -> dg.ExecuteInProcessResult:
    return dg.materialize([billing_invoices], partition_key=month, resources={"postgres": postgres},
                          selection=[billing_invoices])


def test_invoice_is_idempotent_and_revised_after_a_late_event(admin_conn, broker_with_leads, postgres):
    broker, leads = broker_with_leads
    # 27 appointments in November (Pacific): 25 at tier 1 ($150), 2 at tier 2 ($125); one application.
    for lead in leads[:27]:
        _event(admin_conn, broker, lead, "appointment_set", "2026-11-10 12:00-08")
    _event(admin_conn, broker, leads[0], "application_submitted", "2026-11-12 12:00-08")
    # Pacific month edges: 23:30 PT on Oct 31 is November 1 in UTC but October here; Dec 1 00:30 PT is December.
    _event(admin_conn, broker, leads[28], "appointment_set", "2026-10-31 23:30-07")
    _event(admin_conn, broker, leads[29], "appointment_set", "2026-12-01 00:30-08")

    result = _materialize(postgres, "2026-11-01")
    assert result.success
    meta = result.asset_materializations_for_node("billing_invoices")[0].metadata
    assert meta["invoices_created"].value == 1 and meta["events_billed"].value == 28
    [(total, items, revision, count)] = admin_conn.execute(
        "SELECT total, line_items, revision, event_count FROM invoices WHERE broker_id = %s", (broker,)).fetchall()
    assert total == Decimal(25 * 150 + 2 * 125 + 300)
    assert sum(Decimal(i["amount"]) for i in items) == total
    assert (revision, count) == (1, 28)
    admin_conn.commit()

    again = _materialize(postgres, "2026-11-01")
    assert again.asset_materializations_for_node("billing_invoices")[0].metadata["invoices_unchanged"].value == 1
    assert admin_conn.execute("SELECT count(*) FROM invoice_revisions").fetchone()[0] == 1
    admin_conn.commit()

    # A loan funded late in November, reported in December: a revision, not a second invoice.
    _event(admin_conn, broker, leads[0], "loan_funded", "2026-11-29 09:00-08")
    late = _materialize(postgres, "2026-11-01")
    assert late.asset_materializations_for_node("billing_invoices")[0].metadata["invoices_revised"].value == 1
    rows = admin_conn.execute("SELECT total, revision FROM invoices WHERE broker_id = %s AND period_start = '2026-11-01'",
                              (broker,)).fetchall()
    assert rows == [(Decimal(25 * 150 + 2 * 125 + 300 + 1500), 2)]
    assert [r[0] for r in admin_conn.execute("SELECT revision FROM invoice_revisions ORDER BY revision")] == [1, 2]
    assert admin_conn.execute("SELECT count(*) FROM billing_events WHERE invoice_id IS NULL").fetchone()[0] == 2


def test_check_fails_when_line_items_do_not_add_up(admin_conn, broker_with_leads, postgres):
    broker, leads = broker_with_leads
    _event(admin_conn, broker, leads[0], "appointment_set", "2026-11-10 12:00-08")
    assert _materialize(postgres, "2026-11-01").success
    admin_conn.execute("UPDATE invoices SET total = total + 1 WHERE broker_id = %s", (broker,))
    admin_conn.commit()
    result = dg.materialize([billing_invoices, invoice_lines_add_up], partition_key="2026-11-01",
                            resources={"postgres": postgres}, raise_on_error=False)
    # The unchanged re-run leaves the tampered total alone; the blocking check catches it.
    [evaluation] = result.get_asset_check_evaluations()
    assert not evaluation.passed
    assert evaluation.metadata["unbalanced_invoices"].value == 1


def test_an_event_is_billed_once_per_lead_and_type(admin_conn, broker_with_leads):
    broker, leads = broker_with_leads
    _event(admin_conn, broker, leads[0], "appointment_set", "2026-11-10 12:00-08")
    with pytest.raises(psycopg.errors.UniqueViolation):
        _event(admin_conn, broker, leads[0], "appointment_set", "2026-11-11 12:00-08")


@pytest.mark.parametrize("when,months", [("2026-11-20 02:30", ["2026-11-01"]),
                                         ("2026-12-03 02:30", ["2026-11-01", "2026-12-01"])])
def test_nightly_schedule_revisits_last_month_in_the_first_week(when, months):
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from equity_assets.billing.schedules import billing_invoices_nightly

    at = datetime.fromisoformat(when).replace(tzinfo=ZoneInfo("America/Los_Angeles"))
    requests = billing_invoices_nightly(dg.build_schedule_context(scheduled_execution_time=at))
    assert sorted(r.partition_key for r in requests) == months


def _two_brokers_with_events(admin_conn) -> list[uuid.UUID]:
    brokers = []
    for _ in range(2):
        broker = uuid.uuid4()
        admin_conn.execute("INSERT INTO brokers (id, name) VALUES (%s, 'B')", (broker,))
        lead = admin_conn.execute("INSERT INTO leads (assigned_broker_id) VALUES (%s) RETURNING id", (broker,)).fetchone()[0]
        _event(admin_conn, broker, lead, "appointment_set", "2026-11-10 12:00-08")
        brokers.append(broker)
    return brokers


def test_a_crash_mid_month_leaves_nothing_half_written(admin_conn, postgres, monkeypatch):
    from equity_assets.billing import invoices

    _two_brokers_with_events(admin_conn)
    real, calls = invoices._store_invoice, []

    def crash_on_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise psycopg.OperationalError("server closed the connection unexpectedly")
        return real(*args, **kwargs)

    monkeypatch.setattr(invoices, "_store_invoice", crash_on_second)
    with pytest.raises(psycopg.OperationalError), postgres.connection() as conn:
        invoices.build_month(conn, date(2026, 11, 1))
    assert admin_conn.execute("SELECT count(*) FROM invoices").fetchone()[0] == 0
    monkeypatch.setattr(invoices, "_store_invoice", real)
    with postgres.connection() as conn:
        assert invoices.build_month(conn, date(2026, 11, 1)).created == 2
    assert admin_conn.execute("SELECT count(*), max(revision) FROM invoices").fetchone() == (2, 1)


def test_two_runs_at_once_make_one_invoice_each(admin_conn, postgres):
    from concurrent.futures import ThreadPoolExecutor

    from equity_assets.billing.invoices import build_month

    _two_brokers_with_events(admin_conn)

    def build(_):
        with postgres.connection() as conn:
            return build_month(conn, date(2026, 11, 1))

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(build, range(2)))
    # Each broker's invoice is created by exactly one of the runs; the other finds it unchanged.
    assert sum(r.created for r in results) == 2 and sum(r.revised for r in results) == 0
    assert admin_conn.execute("SELECT count(*), max(revision) FROM invoices").fetchone() == (2, 1)
    assert admin_conn.execute("SELECT count(*) FROM invoice_revisions").fetchone()[0] == 2
