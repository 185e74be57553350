"""Building one month's invoices: one per broker with events, revised (never duplicated) on a re-run
that finds different events, every revision kept in ``invoice_revisions``."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

import psycopg
from psycopg.types.json import Jsonb

from ..observe.events import DeadLetter, Stage, send_to_dlq
from .pricing import Event, Tier, price_month

TIME_ZONE = "America/Los_Angeles"


@dataclass
class MonthSummary:
    created: int = 0
    revised: int = 0
    unchanged: int = 0
    events: int = 0
    unpriced: int = 0
    total: Decimal = field(default_factory=lambda: Decimal("0"))


def next_month(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def load_price_list(conn: psycopg.Connection) -> list[Tier]:
    rows = conn.execute("""SELECT event_type, first_unit, last_unit, unit_price, effective_from, effective_to
                             FROM billing_price_list""").fetchall()
    return [Tier(*r) for r in rows]


def month_events(conn: psycopg.Connection, month: date) -> dict[str, list[Event]]:
    """Broker id → the month's events (Pacific month), oldest first."""
    rows = conn.execute(
        f"""SELECT broker_id::text, id::text, event_type, (occurred_at AT TIME ZONE '{TIME_ZONE}')::date
              FROM billing_events
             WHERE occurred_at >= (%(start)s::date)::timestamp AT TIME ZONE '{TIME_ZONE}'
               AND occurred_at <  (%(end)s::date)::timestamp AT TIME ZONE '{TIME_ZONE}'
             ORDER BY broker_id, occurred_at, id""",
        {"start": month, "end": next_month(month)}).fetchall()
    by_broker: dict[str, list[Event]] = {}
    for broker, event_id, event_type, day in rows:
        by_broker.setdefault(broker, []).append(Event(event_id, event_type, day))
    return by_broker


def build_month(conn: psycopg.Connection, month: date, run_id: str | None = None) -> MonthSummary:
    """Create or revise every broker's invoice for ``month`` (first day) in the caller's transaction."""
    tiers = load_price_list(conn)
    summary = MonthSummary()
    for broker, events in month_events(conn, month).items():
        # One builder per broker and month at a time, so two runs cannot both add revision n+1.
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('invoice:' || %s || ':' || %s))", (broker, str(month)))
        items, unit_prices, unpriced = price_month(tiers, events)
        if unpriced:
            send_to_dlq(conn, Stage.BILLING_INVOICES, [
                DeadLetter(reason=reason, source_ref=f"billing_event:{event.id}",
                           payload={"broker_id": broker, "event_type": event.event_type, "day": str(event.day)})
                for event, reason in unpriced], run_id=run_id)
        summary.unpriced += len(unpriced)
        priced = [e.id for e in events if e.id in unit_prices]
        total = sum((Decimal(i["amount"]) for i in items), Decimal("0.00"))
        outcome = _store_invoice(conn, broker, month, items, total, priced)
        setattr(summary, outcome, getattr(summary, outcome) + 1)
        summary.events += len(priced)
        summary.total += total
        # One statement for the broker's month (a statement per event made 40k events take 49 s).
        conn.execute("""UPDATE billing_events e SET amount = p.price
                          FROM unnest(%s::uuid[], %s::numeric[]) AS p(id, price)
                         WHERE e.id = p.id AND e.amount IS DISTINCT FROM p.price""",
                     (list(unit_prices), list(unit_prices.values())))
    return summary


def _store_invoice(conn: psycopg.Connection, broker: str, month: date, items: list[dict], total: Decimal,
                   event_ids: list[str]) -> str:
    content_hash = hashlib.sha256(json.dumps([items, sorted(event_ids)], sort_keys=True).encode()).hexdigest()
    found = conn.execute("SELECT id, revision, content_hash FROM invoices WHERE broker_id = %s AND period_start = %s",
                         (broker, month)).fetchone()
    period_end = next_month(month).toordinal() - 1
    if found and found[2] == content_hash:
        return "unchanged"
    if found is None:
        invoice_id, revision, outcome, reason = None, 1, "created", "first issue"
    else:
        invoice_id, revision, outcome, reason = found[0], found[1] + 1, "revised", "events changed after the last issue"
    invoice_id = conn.execute(
        """INSERT INTO invoices (broker_id, period_start, period_end, total, line_items, revision, event_count, content_hash)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
           ON CONFLICT (broker_id, period_start) DO UPDATE SET total = EXCLUDED.total, line_items = EXCLUDED.line_items,
                 revision = EXCLUDED.revision, event_count = EXCLUDED.event_count, content_hash = EXCLUDED.content_hash
           RETURNING id""",
        (broker, month, date.fromordinal(period_end), total, Jsonb(items), revision, len(event_ids), content_hash),
    ).fetchone()[0]
    conn.execute("""INSERT INTO invoice_revisions (invoice_id, revision, broker_id, total, line_items, event_count, reason)
                    VALUES (%s, %s, %s, %s, %s, %s, %s)""",
                 (invoice_id, revision, broker, total, Jsonb(items), len(event_ids), reason))
    conn.execute("UPDATE billing_events SET invoice_id = %s WHERE id = ANY(%s::uuid[])", (invoice_id, event_ids))
    return outcome


def unbalanced_invoices(conn: psycopg.Connection, month: date) -> list[dict]:
    """Invoices of the month whose line items do not add up to the total and the event count."""
    rows = conn.execute(
        """SELECT i.id::text, i.total, i.event_count, i.line_items,
                  (SELECT count(*) FROM billing_events e WHERE e.invoice_id = i.id)
             FROM invoices i WHERE i.period_start = %s""", (month,)).fetchall()
    bad = []
    for invoice_id, total, event_count, items, linked in rows:
        amounts = sum((Decimal(i["amount"]) for i in items), Decimal("0"))
        quantities = sum(i["quantity"] for i in items)
        lines_ok = all(Decimal(i["unit_price"]) * i["quantity"] == Decimal(i["amount"]) for i in items)
        if not (lines_ok and amounts == total and quantities == event_count == linked):
            bad.append({"invoice_id": invoice_id, "total": str(total), "lines_sum": str(amounts),
                        "event_count": event_count, "line_quantity": quantities, "linked_events": linked})
    return bad
