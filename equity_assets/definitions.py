"""The single Definitions object: each domain's `defs`, merged, with resources wired."""

import dagster as dg

from .campaign import definitions as campaign
from .ingest import definitions as ingest
from .observe import definitions as observe
from .verify import definitions as verify
from .resources import build_resources

defs = dg.Definitions.merge(
    ingest.defs,
    verify.defs,
    campaign.defs,
    observe.defs,
    # Steps wait on PostgreSQL and vendor HTTP and follow one another: one process per run, not
    # one interpreter start and full import per step (a crashed run is re-run by run_retries).
    dg.Definitions(resources=build_resources(), executor=dg.in_process_executor),
)
