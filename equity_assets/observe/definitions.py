"""The observe domain's definitions."""

import dagster as dg

from .assets import pipeline_funnel

pipeline_funnel_job = dg.define_asset_job("pipeline_funnel_job", selection=dg.AssetSelection.assets(pipeline_funnel))

defs = dg.Definitions(assets=[pipeline_funnel], jobs=[pipeline_funnel_job])
