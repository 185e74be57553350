"""Two verified_leads runs at once (e.g. the sensor's run and a manual one): each lead verified once."""

from __future__ import annotations

import threading

import dagster as dg

from equity_assets.db.resources import PostgresResource
from equity_assets.verify.assets import verified_leads

from equity_assets_tests.verify.conftest import batchdata_resource, melissa_resource


def test_two_parallel_runs_verify_each_lead_exactly_once(candidates, insert_leads, clean_db, sandbox_url,
                                                         sandbox_control, query) -> None:
    homes = candidates(60)
    insert_leads([h.lead(email=f"parallel{n}@example.com") for n, h in enumerate(homes)])
    sandbox_control.set_faults(latency_ms=200)  # keep both runs in flight at the same time (~3 s each)
    results: list[dg.ExecuteInProcessResult] = []
    start = threading.Barrier(2)

    def run() -> None:
        postgres = PostgresResource(dsn=clean_db.app_dsn)  # a pool per run, as two processes would have
        start.wait()
        results.append(dg.materialize(
            [verified_leads],
            resources={"postgres": postgres, "melissa": melissa_resource(sandbox_url),
                       "batchdata": batchdata_resource(sandbox_url)},
            run_config={"ops": {"verified_leads": {"config": {"chunk_size": 4, "prefetch_chunks": 1}}}},
            instance=dg.DagsterInstance.ephemeral(),
        ))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)

    assert len(results) == 2 and all(r.success for r in results)
    verified = [
        {k: v.value for k, v in r.asset_materializations_for_node("verified_leads")[0].metadata.items()}["leads_verified"]
        for r in results
    ]
    assert sum(verified) == 60 and min(verified) > 0, verified  # both runs did part of the work
    # what Melissa received: every lead once, none twice
    assert sandbox_control.stats()["records"]["melissa_records"] == 60
    assert query("SELECT count(*), count(verified_at) FROM leads") == [(60, 60)]
    assert query("SELECT count(*) FROM pipeline_dlq") == [(0,)]
