"""The billing domain's definitions (resource key: `postgres`)."""

import dagster as dg

from .assets import billing_invoices
from .checks import billing_checks
from .schedules import billing_invoices_job, billing_invoices_nightly

defs = dg.Definitions(assets=[billing_invoices], asset_checks=billing_checks, jobs=[billing_invoices_job],
                      schedules=[billing_invoices_nightly])
