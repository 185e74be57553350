"""The single Definitions object: each domain's `defs`, merged, with resources wired."""

import dagster as dg

from .billing import definitions as billing
from .campaign import definitions as campaign
from .engage import definitions as engage
from .ingest import definitions as ingest
from .observe import definitions as observe
from .verify import definitions as verify
from .voice import definitions as voice
from .resources import build_resources

defs = dg.Definitions.merge(
    ingest.defs,
    verify.defs,
    campaign.defs,
    engage.defs,
    voice.defs,
    observe.defs,
    billing.defs,
    # Steps wait on PostgreSQL and vendor HTTP and follow one another: one process per run, not
    # one interpreter start and full import per step (a crashed run is re-run by run_retries).
    dg.Definitions(resources=build_resources(), executor=dg.in_process_executor),
)
