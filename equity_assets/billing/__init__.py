"""Billing: billable events priced by the waterfall price list into monthly invoices."""
