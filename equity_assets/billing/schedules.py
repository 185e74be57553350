"""The nightly invoice run: the current month's drafts, and in the first week also last month's,
so events reported late (a loan funded on the 30th, reported on the 2nd) land in a revision."""

import dagster as dg

from .assets import billing_invoices

billing_invoices_job = dg.define_asset_job("billing_invoices_job", selection=[billing_invoices])

LATE_REPORT_DAYS = 7


@dg.schedule(job=billing_invoices_job, cron_schedule="30 2 * * *", execution_timezone="America/Los_Angeles",
             default_status=dg.DefaultScheduleStatus.RUNNING,
             description="Nightly 02:30 PT: this month's invoices; during the first week also last month's.")
def billing_invoices_nightly(context: dg.ScheduleEvaluationContext):
    when = context.scheduled_execution_time
    keys = billing_invoices.partitions_def.get_partition_keys(current_time=when)
    months = keys[-2:] if when.day <= LATE_REPORT_DAYS else keys[-1:]
    return [dg.RunRequest(run_key=f"{month}:{when:%Y-%m-%d}", partition_key=month) for month in months]
