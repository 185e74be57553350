"""`billing_invoices`: each broker's invoice for a Pacific calendar month."""


from datetime import date

import dagster as dg

from ..db.resources import PostgresResource
from .invoices import build_month

monthly = dg.MonthlyPartitionsDefinition(start_date="2026-01-01", timezone="America/Los_Angeles", end_offset=1)


@dg.asset(partitions_def=monthly, group_name="billing", kinds={"postgres"},
          description="One invoice per broker and month: billable events (appointments from call outcomes, "
                      "applications and funded loans reported by brokers) priced by the waterfall price list in "
                      "effect on each event's day. A re-run is idempotent; one that finds a late event revises "
                      "the invoice (revision + 1, every revision kept) instead of adding one. The current month "
                      "is a draft that later runs revise.")
def billing_invoices(context: dg.AssetExecutionContext, postgres: PostgresResource) -> dg.MaterializeResult:
    month = date.fromisoformat(context.partition_key)
    with postgres.connection() as conn:
        summary = build_month(conn, month, run_id=context.run.run_id)
    context.log.info("invoices for %s: %d created, %d revised, %d unchanged", month, summary.created, summary.revised,
                     summary.unchanged)
    return dg.MaterializeResult(metadata={
        "month": str(month), "invoices_created": summary.created, "invoices_revised": summary.revised,
        "invoices_unchanged": summary.unchanged, "events_billed": summary.events,
        "events_unpriced_to_dlq": summary.unpriced, "total_usd": float(summary.total)})
