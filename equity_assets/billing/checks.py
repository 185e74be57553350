"""Invoices add up: every line is quantity × unit price, the lines sum to the total, and the
quantities to the events linked to the invoice."""


from datetime import date

import dagster as dg

from ..db.resources import PostgresResource
from .assets import billing_invoices
from .invoices import unbalanced_invoices


@dg.asset_check(asset=billing_invoices, blocking=True,
                description="Line items of every invoice of the month add up to its total and its events.")
def invoice_lines_add_up(context: dg.AssetCheckExecutionContext, postgres: PostgresResource) -> dg.AssetCheckResult:
    month = date.fromisoformat(context.partition_key) if context.has_partition_key else None
    with postgres.connection() as conn:
        months = [month] if month else [r[0] for r in conn.execute("SELECT DISTINCT period_start FROM invoices")]
        bad = [b for m in months for b in unbalanced_invoices(conn, m)]
    return dg.AssetCheckResult(passed=not bad, severity=dg.AssetCheckSeverity.ERROR,
                               metadata={"unbalanced_invoices": len(bad), "examples": dg.MetadataValue.json(bad[:5])})


billing_checks = [invoice_lines_add_up]
