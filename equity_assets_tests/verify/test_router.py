"""Provider routing through verified_leads: fallback on error and on no match, DLQ when nobody answers."""

from __future__ import annotations

from equity_assets_tests.verify.conftest import BATCHDATA_PATH, MELISSA_PATH, vendor_requests


def matched_by_batchdata(c) -> bool:
    return c.batchdata.matched and not c.batchdata.error


def test_melissa_down_falls_back_to_batchdata(candidates, insert_leads, run_verify, query, sandbox_control) -> None:
    homes = candidates(3, lambda c: c.melissa.address_verified and matched_by_batchdata(c))
    ids = insert_leads([h.lead() for h in homes])
    sandbox_control.set_faults(path_faults={MELISSA_PATH: {"error_rate": 1.0}})

    run = run_verify()

    assert run.success
    rows = query("SELECT id::text, verification_provider, verified_at IS NOT NULL, melissa_payload IS NULL, "
                 "provider_payload ->> 'matched' FROM leads ORDER BY id")
    assert rows == [(i, "batchdata", True, True, "true") for i in sorted(ids)]
    assert run.metadata["verified_by_batchdata"] == 3 and run.metadata["dlq"] == 0
    # Melissa got its retries (1 request + 2 retries), then was left alone for the rest of the run
    assert vendor_requests(sandbox_control, MELISSA_PATH) == 3
    assert run.metadata["retries"] == 2


def test_melissa_no_match_falls_back_to_batchdata(candidates, insert_leads, run_verify, query) -> None:
    (home,) = candidates(1, lambda c: not c.melissa.address_verified and matched_by_batchdata(c))
    (lead_id,) = insert_leads([home.lead()])

    run = run_verify()

    (row,) = query("SELECT verification_provider, mak, address_codes, melissa_payload IS NOT NULL, "
                   "provider_payload IS NOT NULL FROM leads WHERE id = %s", (lead_id,))
    provider, mak, address_codes, has_melissa, has_batchdata = row
    assert provider == "batchdata" and mak is None
    assert address_codes == list(home.melissa.address_codes) and any(c.startswith("AE") for c in address_codes)
    assert has_melissa and has_batchdata  # both answers are kept
    assert run.metadata["verified_by_batchdata"] == 1


def test_no_match_anywhere_is_still_a_verdict(candidates, insert_leads, run_verify, query, sandbox_control) -> None:
    (home,) = candidates(1, lambda c: not c.melissa.address_verified and not c.batchdata.matched)
    insert_leads([home.lead()])

    run = run_verify()

    assert query("SELECT verification_provider, verified_at IS NOT NULL FROM leads") == [("melissa", True)]
    assert run.metadata["no_match"] == 1 and run.metadata["dlq"] == 0
    assert vendor_requests(sandbox_control, BATCHDATA_PATH) == 1


def test_provider_order_is_configurable(candidates, insert_leads, run_verify, query, sandbox_control) -> None:
    homes = candidates(2, lambda c: c.melissa.address_verified and matched_by_batchdata(c))
    insert_leads([h.lead() for h in homes])

    run_verify(config={"provider_order": ["batchdata", "melissa"]})

    assert {p for (p,) in query("SELECT verification_provider FROM leads")} == {"batchdata"}
    assert vendor_requests(sandbox_control, MELISSA_PATH) == 0


def test_both_providers_down_dead_letters_and_loses_nothing(
    candidates, insert_leads, run_verify, query, sandbox_control
) -> None:
    homes = candidates(3)
    ids = insert_leads([h.lead(email=f"keep{n}@example.com") for n, h in enumerate(homes)])
    sandbox_control.set_faults(error_rate=1.0)  # every vendor path answers 5xx, forever

    failed = run_verify(raise_on_error=False)

    assert not failed.success  # a total outage is a red run, not a quiet one
    dead = query("SELECT source_ref, stage, status, attempts, reason, payload::text FROM pipeline_dlq ORDER BY source_ref")
    assert [(ref, stage, status, attempts) for ref, stage, status, attempts, _, _ in dead] == [
        (f"lead:{i}", "verified_leads", "pending", 1) for i in sorted(ids)
    ]
    assert all("melissa: ProviderHTTPError HTTP 5" in reason and "batchdata:" in reason for *_, reason, _ in dead)
    assert all("example.com" not in payload for *_, payload in dead)  # no contact data in the DLQ
    # nothing was written, so the leads are still due
    assert query("SELECT count(*) FROM leads WHERE verified_at IS NULL AND email LIKE 'keep%%'") == [(3,)]

    # within the back-off nothing is retried...
    sandbox_control.set_faults(error_rate=0.0)
    assert run_verify().metadata["leads_claimed"] == 0
    # ...after it, the same leads verify and their dead letters are resolved
    recovered = run_verify(config={"dlq_backoff_minutes": 0})
    assert recovered.metadata["leads_verified"] == 3
    assert query("SELECT DISTINCT status FROM pipeline_dlq") == [("resolved",)]


def test_a_failing_batch_is_split_to_find_the_poison_records(
    candidates, insert_leads, run_verify, query, sandbox_control
) -> None:
    """One Melissa request fails after its retries while the others succeed: the batch is bisected."""
    homes = candidates(300, pool=400)
    insert_leads([h.lead() for h in homes])
    # the first request and its two retries fail; everything after succeeds
    sandbox_control.set_faults(path_faults={MELISSA_PATH: {"fail_next": 3}})

    run = run_verify(melissa={"max_concurrency": 1, "batch_size": 100})

    assert run.metadata["dlq"] == 0 and run.metadata["leads_verified"] == 300
    # 3 batches (the first with 2 retries) + the failed batch as two halves
    assert vendor_requests(sandbox_control, MELISSA_PATH) == 3 + 2 + 2
    assert query("SELECT count(*) FROM leads WHERE melissa_payload IS NOT NULL") == [(300,)]


def test_a_lead_without_contacts_is_skip_traced_even_when_melissa_knows_the_address(
    candidates, insert_leads, run_verify, query, sandbox_control
) -> None:
    """Melissa verifies addresses and contacts we have; finding contacts is BatchData's job."""
    (home,) = candidates(1, lambda c: c.melissa.address_verified and matched_by_batchdata(c)
                         and any(p.callable and p.reachable and p.tested for o in c.batchdata.owners[:1] for p in o.phones))
    insert_leads([home.lead()])

    run_verify()

    (row,) = query("SELECT verification_provider, mak, phone, phone_codes, phone_verified FROM leads")
    provider, mak, phone, phone_codes, phone_verified = row
    assert (provider, mak) == ("batchdata", home.melissa.mak)  # the MAK still comes from Melissa
    assert phone is not None and phone_codes == ["BP01"] and phone_verified
    assert vendor_requests(sandbox_control, BATCHDATA_PATH) == 1


def test_after_a_429_burst_melissa_is_probed_and_takes_its_share_again(
    candidates, insert_leads, run_verify, query, sandbox_control
) -> None:
    """The burst fails the first chunk's Melissa batch (1 request + 2 retries); the circuit opens, that
    chunk goes to BatchData, and the next chunk's probe finds Melissa answering again."""
    homes = candidates(12, lambda c: c.melissa.address_verified and matched_by_batchdata(c))
    insert_leads([h.lead(email=f"owner{n}@example.com") for n, h in enumerate(homes)])
    sandbox_control.set_faults(path_faults={MELISSA_PATH: {"fail_next": 3, "fail_next_status": 429, "retry_after_s": 0}})

    run = run_verify(config={"chunk_size": 3, "prefetch_chunks": 0, "circuit_cooldown_s": 0})

    assert run.success and run.metadata["leads_verified"] == 12 and run.metadata["dlq"] == 0
    assert (run.metadata["verified_by_batchdata"], run.metadata["verified_by_melissa"]) == (3, 9)
    assert run.metadata["circuit_trips"] == {"melissa": 1} and "providers_unavailable" not in run.metadata
    assert query("SELECT verification_provider, count(*) FROM leads GROUP BY 1 ORDER BY 1") == [
        ("batchdata", 3), ("melissa", 9)]


def test_within_the_cooldown_a_tripped_provider_is_left_alone(
    candidates, insert_leads, run_verify, sandbox_control
) -> None:
    homes = candidates(6, lambda c: c.melissa.address_verified and matched_by_batchdata(c))
    insert_leads([h.lead(email=f"owner{n}@example.com") for n, h in enumerate(homes)])
    sandbox_control.set_faults(path_faults={MELISSA_PATH: {"fail_next": 3, "fail_next_status": 429, "retry_after_s": 0}})

    run = run_verify(config={"chunk_size": 3, "prefetch_chunks": 0, "circuit_cooldown_s": 3600})

    assert (run.metadata["verified_by_batchdata"], run.metadata["verified_by_melissa"]) == (6, 0)
    assert vendor_requests(sandbox_control, MELISSA_PATH) == 3  # the burst only: no probe yet
    assert run.metadata["providers_unavailable"] == {"melissa": "ProviderHTTPError HTTP 429 after 2 retries"}
