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
    dg.Definitions(resources=build_resources()),
)
