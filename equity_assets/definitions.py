"""The single Definitions object: each domain's `defs`, merged, with resources wired."""

from __future__ import annotations

import dagster as dg

from .observe import assets as observe_assets
from .resources import build_resources

defs = dg.Definitions.merge(
    observe_assets.defs,
    dg.Definitions(resources=build_resources()),
)
