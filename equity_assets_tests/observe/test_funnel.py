"""pipeline_funnel reads pipeline_events into metadata."""

import dagster as dg

from equity_assets.observe.assets import pipeline_funnel
from equity_assets.observe.events import record_event


def test_funnel_counts_events_and_idempotency_keys_dedupe(postgres):
    with postgres.connection() as conn:
        assert record_event(conn, "upload_received", count=1, idempotency_key="u1")
        assert not record_event(conn, "upload_received", count=1, idempotency_key="u1")
        record_event(conn, "dedupe_success", count=40, duration_ms=120)
        record_event(conn, "dedupe_success", count=2, duration_ms=80)
    result = dg.materialize([pipeline_funnel], resources={"postgres": postgres})
    assert result.success
    md = result.asset_materializations_for_node("pipeline_funnel")[0].metadata
    assert md["upload_received_items"].value == 1
    assert md["dedupe_success_items"].value == 42
    assert md["email_sent_items"].value == 0
