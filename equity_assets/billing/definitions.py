"""The billing domain's definitions (resource key: `postgres`)."""

import dagster as dg

from .assets import billing_invoices
from .checks import billing_checks

billing_invoices_job = dg.define_asset_job("billing_invoices_job", selection=[billing_invoices],
                                           partitions_def=billing_invoices.partitions_def)


@dg.schedule(job=billing_invoices_job, cron_schedule="30 2 * * *", execution_timezone="America/Los_Angeles",
             description="Nightly: the current month's draft invoices, so late events land in a revision.")
def billing_invoices_nightly(context: dg.ScheduleEvaluationContext):
    partition = billing_invoices.partitions_def.get_last_partition_key(current_time=context.scheduled_execution_time)
    return dg.RunRequest(run_key=f"{partition}:{context.scheduled_execution_time:%Y-%m-%d}", partition_key=partition)


defs = dg.Definitions(assets=[billing_invoices], asset_checks=billing_checks, jobs=[billing_invoices_job],
                      schedules=[billing_invoices_nightly])
