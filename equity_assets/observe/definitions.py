"""The observe domain's definitions."""

import dagster as dg

from .assets import pipeline_funnel

defs = dg.Definitions(assets=[pipeline_funnel])
