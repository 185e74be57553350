"""A MAK found by verification that another lead already has: the leads are folded, never a unique violation."""

from __future__ import annotations

import psycopg


def verifiable(c) -> bool:
    return c.melissa.address_verified and c.melissa.mak is not None


def respelled(address: str) -> str:
    """The same street address as a different list vendor would spell it."""
    return address.upper().replace("AVENUE", "AVE.")


def test_two_leads_of_one_chunk_that_verify_to_one_mak_become_one_lead(
    candidates, insert_leads, run_verify, query, postgres
) -> None:
    (home,) = candidates(1, verifiable)
    first, second = insert_leads([
        home.lead(email="first@example.com", owner_occupied=True),
        home.lead(property_address=respelled(home.address), email="second@example.com", phone="+12175550199"),
    ])
    with postgres.connection() as conn:  # lineage of both rows, as dedupe would have left it
        conn.execute("INSERT INTO lead_sources (upload_id, row_number, lead_id, matched_on) "
                     "VALUES (gen_random_uuid(), 1, %s, 'new'), (gen_random_uuid(), 2, %s, 'new')", (first, second))

    run = run_verify()

    assert run.success and run.metadata["merged_by_mak"] == 1
    (lead,) = query("SELECT id::text, mak, email, alt_emails, phone, owner_occupied FROM leads")
    survivor, mak, email, alt_emails, phone, owner_occupied = lead
    assert survivor == min(first, second) and mak == home.melissa.mak
    # dedupe's merge rules: newer non-null data wins, the old email is kept as an alternate
    assert (email, alt_emails, phone, owner_occupied) == ("second@example.com", ["first@example.com"], "+12175550199", True)
    assert query("SELECT DISTINCT lead_id::text FROM lead_sources") == [(survivor,)]
    merged = query("SELECT lead_id::text, payload ->> 'merged_lead_id', payload ->> 'key' FROM pipeline_events "
                   "WHERE event_type = 'lead_merged'")
    assert merged == [(survivor, max(first, second), "mak")]


def test_a_lead_verifying_to_a_mak_another_lead_owns_is_folded_into_it(
    candidates, insert_leads, run_verify, query, sandbox_control
) -> None:
    (home,) = candidates(1, verifiable)
    (owner,) = insert_leads([home.lead(mak=home.melissa.mak, email="owner@example.com", verified_at="2020-01-01")])
    insert_leads([home.lead(property_address=respelled(home.address), email="newer@example.com")])

    run = run_verify(config={"max_age_days": 100_000})  # the owner's old verification is still fresh

    assert run.metadata["merged_by_mak"] == 1 and run.metadata["leads_verified"] == 1
    assert query("SELECT id::text, mak, email FROM leads") == [(owner, home.melissa.mak, "newer@example.com")]
    # the survivor's primary email changed, so it is due again; the next run verifies it
    assert query("SELECT verified_at FROM leads") == [(None,)]
    again = run_verify(config={"max_age_days": 100_000})
    assert again.metadata["leads_verified"] == 1 and again.metadata["merged_by_mak"] == 0
    assert query("SELECT email_codes <> '{}' FROM leads") == [(True,)]


def test_leads_with_outreach_history_are_never_folded(candidates, insert_leads, run_verify, query) -> None:
    (home,) = candidates(1, verifiable)
    owner, other = insert_leads([
        home.lead(mak=home.melissa.mak, campaign_status="active", verified_at="2020-01-01"),
        home.lead(property_address=respelled(home.address), campaign_status="replied"),
    ])

    run = run_verify(config={"max_age_days": 100_000})

    assert run.success and run.metadata["merged_by_mak"] == 0 and run.metadata["mak_conflicts"] == 1
    assert sorted(query("SELECT id::text, mak FROM leads")) == sorted([(owner, home.melissa.mak), (other, None)])
    assert query("SELECT lead_id::text, other_lead_id::text, key_name FROM lead_key_conflicts") == [(owner, other, "mak")]


def test_fold_lead_keeps_the_lead_that_has_history(insert_leads, postgres, query) -> None:
    quiet, worked = insert_leads([
        {"mak": "1234567890", "email": "quiet@example.com", "property_state": "FL"},
        {"email": "worked@example.com", "campaign_status": "active"},
    ])
    with postgres.connection() as conn:
        survivor = conn.execute("SELECT fold_lead(%s, %s, 'mak', 'test')::text", (worked, quiet)).fetchone()[0]
    assert survivor == worked
    # the survivor adopted the MAK of the lead folded into it
    assert query("SELECT id::text, mak, campaign_status::text, property_state FROM leads") == [
        (worked, "1234567890", "active", "FL")
    ]


def test_fold_lead_is_callable_by_the_pipeline_role_only(clean_db) -> None:
    with psycopg.connect(clean_db.admin_dsn) as conn:
        conn.execute("SET ROLE authenticated")
        try:
            conn.execute("SELECT fold_lead(gen_random_uuid(), gen_random_uuid(), 'mak', 'x')")
        except psycopg.errors.InsufficientPrivilege:
            return
    raise AssertionError("authenticated could execute fold_lead")


def test_a_twin_locked_by_a_later_chunk_of_the_same_run_waits_for_the_next_run(
    candidates, insert_leads, run_verify, query
) -> None:
    """Folding into a lead another open chunk of this run holds would wait on ourselves: held back instead."""
    (home,) = candidates(1, verifiable)
    (twin,) = insert_leads([home.lead(property_address=respelled(home.address), email="twin@example.com")])
    (owner,) = insert_leads([home.lead(mak=home.melissa.mak)])  # claimed after the twin (ids are time-ordered)

    first = run_verify(config={"chunk_size": 1, "prefetch_chunks": 2})

    assert first.success and first.metadata["held_back_for_twin"] == 1 and first.metadata["merged_by_mak"] == 0
    assert query("SELECT id::text, verified_at IS NULL FROM leads ORDER BY id") == [(twin, True), (owner, False)]
    second = run_verify()
    assert second.metadata["merged_by_mak"] == 1
    assert query("SELECT id::text, email FROM leads") == [(owner, "twin@example.com")]


def _addressed(std: str, city: str, state: str, zip5: str | None, **extra) -> dict:
    """A lead with a standardized address (its addr_hash is set from it after the insert)."""
    return {"property_address": std.split("|")[0], "addr_std": std, "addr_bare": std, "addr_city": city,
            "property_city": city, "property_state": state, "property_zip": zip5, **extra}


def _key_the_addresses(postgres) -> None:
    with postgres.connection() as conn:
        conn.execute("UPDATE leads SET addr_hash = lead_address_hash(addr_std, addr_city, property_state, property_zip)")


def _keys_that_disagree(postgres) -> int:
    from equity_assets.ingest.checks import ADDRESS_KEY_AGREES_SQL

    with postgres.connection() as conn:
        return conn.execute(ADDRESS_KEY_AGREES_SQL).fetchone()[1]


def test_an_upload_rows_conflict_on_the_folded_lead_moves_to_the_survivor_whole(insert_leads, postgres, query) -> None:
    # an ingest conflict has no other lead: the row matched this lead by APN but names another address
    keep, folded = insert_leads([{"email": "keep@example.com"}, {"email": "folded@example.com"}])
    upload = query("SELECT gen_random_uuid()::text")[0][0]
    with postgres.connection() as conn:
        conn.execute(
            """INSERT INTO lead_key_conflicts (lead_id, other_lead_id, key_name, source_ref, upload_id, row_number,
                                               matched_on, lead_row, incoming_row)
               VALUES (%s, NULL, 'address', 'upload:x', %s, 2460, 'apn', '{"a": 1}', '{"b": 2}'),
                      (%s, %s, 'apn', 'upload:y', NULL, NULL, NULL, NULL, NULL)""",
            (folded, upload, folded, keep),
        )
        assert conn.execute("SELECT fold_lead(%s, %s, 'mak', 'test')::text", (folded, keep)).fetchone()[0] == keep
    # the upload row's record survives with everything it said; the conflict between the two is gone
    assert query("""SELECT lead_id::text, other_lead_id, key_name, upload_id::text, row_number, matched_on,
                           lead_row, incoming_row FROM lead_key_conflicts""") == [
        (keep, None, "address", upload, 2460, "apn", {"a": 1}, {"b": 2})
    ]


def test_a_fold_that_gives_the_survivor_a_zip_rekeys_it(insert_leads, postgres, query) -> None:
    # the survivor was keyed by city + state; the folded lead had the ZIP: the key follows the address
    keep, folded = insert_leads([
        _addressed("12 OAK ST|", "SPRINGFIELD", "IL", None, email="keep@example.com"),
        _addressed("12 OAK ST|", "SPRINGFIELD", "IL", "62701", email="folded@example.com"),
    ])
    _key_the_addresses(postgres)
    with postgres.connection() as conn:
        conn.execute("SELECT fold_lead(%s, %s, 'mak', 'test')", (folded, keep))
    assert query("SELECT id::text, property_zip FROM leads") == [(keep, "62701")]
    assert _keys_that_disagree(postgres) == 0


def test_a_fold_whose_address_is_a_third_leads_keeps_the_survivors_own_and_records_it(
    insert_leads, postgres, query
) -> None:
    keep, folded, third = insert_leads([
        _addressed("12 OAK ST|", "SPRINGFIELD", "IL", None, email="keep@example.com"),
        _addressed("40 ELM AVE|", "SPRINGFIELD", "IL", "62701", email="folded@example.com"),
        _addressed("12 OAK ST|", "SPRINGFIELD", "IL", "62701"),
    ])
    _key_the_addresses(postgres)
    with postgres.connection() as conn:
        conn.execute("SELECT fold_lead(%s, %s, 'mak', 'test')", (folded, keep))
    # the survivor's street line with the folded lead's ZIP is the third lead's address: not applied
    assert query("SELECT property_address, property_zip, email FROM leads WHERE id = %s", (keep,)) == [
        ("12 OAK ST", None, "folded@example.com")]
    assert _keys_that_disagree(postgres) == 0
    assert query("SELECT lead_id::text, other_lead_id::text, key_name FROM lead_key_conflicts") == [
        (keep, third, "addr_hash")]
