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


def test_a_campaign_day_is_one_step_that_cannot_be_split():
    defs = wired()
    graph = defs.resolve_asset_graph()
    batch, push = dg.AssetKey("daily_campaign_batch"), dg.AssetKey("instantly_campaign_leads")
    # selecting the batch (as a UI backfill does) always brings the push along
    assert graph.get(batch).execution_set_asset_keys == {batch, push}
    nodes = {node.name for node in defs.resolve_job_def("daily_campaign_job").graph.node_defs}
    assert "campaign_day" in nodes


def test_the_batch_checks_are_blocking_and_stale_sends_are_watched_daily():
    defs = wired()
    graph = defs.resolve_asset_graph()
    keys = graph.get_check_keys_for_assets({dg.AssetKey("daily_campaign_batch")})
    assert {key.name for key in keys} == BATCH_CHECKS
    assert all(graph.get_check_spec(key).blocking for key in keys)
    stale = dg.AssetCheckKey(dg.AssetKey("instantly_campaign_leads"), "no_stale_queued_sends")
    assert stale in defs.resolve_job_def("contactable_leads_job").asset_layer.asset_graph.asset_check_keys
