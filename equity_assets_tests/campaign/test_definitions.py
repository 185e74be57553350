"""The campaign definitions load, and carry the guard rails the design asks for."""

from __future__ import annotations

import dagster as dg

from .helpers import wired_definitions as wired

BATCH_CHECKS = {"no_lead_in_two_batches", "broker_daily_cap_held", "no_suppressed_or_dnc_lead", "campaign_batch_matches_schema"}


def test_loads_with_the_postgres_and_instantly_resources():
    dg.Definitions.validate_loadable(wired())


def test_assets_are_documented_grouped_and_fresh():
    specs = {spec.key.to_user_string(): spec for spec in wired().resolve_all_asset_specs()}
    # verified_leads is the upstream of scoring, defined by the verify domain
    assert specs.pop("verified_leads").group_name != "campaign"
    assert set(specs) == {"scored_leads", "contactable_leads", "daily_campaign_batch", "instantly_campaign_leads"}
    assert specs["scored_leads"].deps[0].asset_key == dg.AssetKey("verified_leads")
    assert specs["contactable_leads"].deps[0].asset_key == dg.AssetKey("scored_leads")
    for spec in specs.values():
        assert spec.description and spec.group_name == "campaign" and spec.kinds
        assert spec.freshness_policy is not None
    assert specs["instantly_campaign_leads"].deps[0].asset_key == dg.AssetKey("daily_campaign_batch")


def test_the_batch_checks_block_the_push_and_run_in_the_daily_job():
    defs = wired()
    nodes = {node.name for node in defs.resolve_job_def("daily_campaign_job").graph.node_defs}
    assert {f"daily_campaign_batch_{name}" for name in BATCH_CHECKS} <= nodes
    assert "instantly_campaign_leads" in nodes
    graph = defs.resolve_asset_graph()
    keys = graph.get_check_keys_for_assets({dg.AssetKey("daily_campaign_batch")})
    assert {key.name for key in keys} == BATCH_CHECKS
    assert all(graph.get_check_spec(key).blocking for key in keys)
