"""verified_leads end to end: work queue, no repeat provider calls, suppressions, events, sensor, definitions."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import dagster as dg

from equity_assets.verify.assets import verified_leads
from equity_assets.verify.definitions import defs as verify_defs
from equity_assets.verify.providers import e164
from equity_assets.verify.sensors import verification_due_sensor
from equity_assets_tests.verify.conftest import MELISSA_PATH, batchdata_resource, melissa_resource, vendor_requests


def test_rerun_does_not_call_providers_for_fresh_leads(candidates, insert_leads, run_verify, query, sandbox_control) -> None:
    homes = candidates(25)
    insert_leads([h.lead(email=f"fresh{n}@example.com") for n, h in enumerate(homes)])

    first = run_verify(config={"chunk_size": 10})
    calls = sandbox_control.stats()["requests"]

    assert first.metadata["leads_verified"] == 25 and first.metadata["chunks"] == 3
    assert vendor_requests(sandbox_control, MELISSA_PATH) == 3
    second = run_verify(config={"chunk_size": 10})
    assert second.metadata["leads_verified"] == 0 and second.metadata["leads_claimed"] == 0
    assert sandbox_control.stats()["requests"] == calls  # not one more request to any vendor

    # once a verification is older than max_age_days the lead is due again
    query("UPDATE leads SET verified_at = now() - interval '40 days' WHERE email = 'fresh0@example.com' RETURNING 1")
    assert run_verify(config={"max_age_days": 30}).metadata["leads_verified"] == 1
    assert vendor_requests(sandbox_control, MELISSA_PATH) == 4


def test_max_leads_per_run_leaves_the_rest_for_the_next_run(candidates, insert_leads, run_verify) -> None:
    insert_leads([h.lead() for h in candidates(12)])
    first = run_verify(config={"chunk_size": 5, "max_leads_per_run": 7, "prefetch_chunks": 0})
    assert (first.metadata["leads_verified"], first.metadata["chunks"]) == (7, 2)
    assert run_verify(config={"chunk_size": 2}).metadata["leads_verified"] == 5


def test_verification_results_are_written(candidates, insert_leads, run_verify, query) -> None:
    (home,) = candidates(1, lambda c: c.melissa.address_verified and c.melissa.date_of_birth)
    (lead_id,) = insert_leads([home.lead(email="writes@example.com", phone="+12175550123")])

    run_verify()

    (row,) = query(
        "SELECT mak, address_codes, email_codes <> '{}', phone_codes <> '{}', owner_birth_month, verification_provider, "
        "verified_at IS NOT NULL, melissa_payload ->> 'mak', lead_score IS NOT NULL FROM leads WHERE id = %s",
        (lead_id,),
    )
    mak, address_codes, has_email_codes, has_phone_codes, birth_month, provider, verified, payload_mak, scored = row
    dob = home.melissa.date_of_birth
    assert (mak, payload_mak) == (home.melissa.mak, home.melissa.mak)
    assert address_codes == list(home.melissa.address_codes)
    assert has_email_codes and has_phone_codes and verified and scored and provider == "melissa"
    assert (birth_month.year, birth_month.month, birth_month.day) == (int(dob[:4]), int(dob[4:6]), 1)


def test_funnel_events_per_chunk(candidates, insert_leads, run_verify, query) -> None:
    insert_leads([h.lead(email=f"event{n}@example.com", phone=f"+1217555{n:04d}") for n, h in enumerate(candidates(9))])

    run = run_verify(config={"chunk_size": 5})

    events = query("SELECT event_type, sum(count)::int, count(*)::int FROM pipeline_events "
                   "WHERE event_type IN ('email_verified', 'phone_verified') GROUP BY 1 ORDER BY 1")
    assert events == [("email_verified", run.metadata["usable_email"], 2), ("phone_verified", run.metadata["usable_phone"], 2)]
    assert query("SELECT count(*)::int FROM pipeline_events WHERE event_type = 'lead_queued'") == [(1,)]


def test_dnc_tcpa_litigators_and_deceased_are_suppressed(candidates, insert_leads, run_verify, query) -> None:
    def owner(c):
        return c.batchdata.owners[0] if c.batchdata.matched and c.batchdata.owners else None

    def flagged_phones(c, flag):
        return {e164(p.number) for person in c.batchdata.persons for p in person.phones if getattr(p, flag)}

    dnc = candidates(1, lambda c: bool(flagged_phones(c, "dnc")), pool=600)[0]
    tcpa = candidates(1, lambda c: bool(flagged_phones(c, "tcpa")), pool=600)[0]
    litigator = candidates(1, lambda c: owner(c) is not None and owner(c).litigator and owner(c).phones, pool=600)[0]
    deceased = candidates(1, lambda c: owner(c) is not None and owner(c).deceased and owner(c).emails, pool=600)[0]
    ids = insert_leads([dnc.lead(), tcpa.lead(), litigator.lead(phone="+12175550111"), deceased.lead(email="late@example.com")])

    run = run_verify(config={"provider_order": ["batchdata"]})

    suppressed = {(channel, value): reason for channel, value, reason in query("SELECT channel, value, reason FROM suppression_list")}
    for number in flagged_phones(dnc, "dnc"):
        assert ("phone", number) in suppressed
    assert any(suppressed.get(("phone", n), "").startswith(("BP02", "BP03", "BL01", "BD01")) for n in flagged_phones(tcpa, "tcpa"))
    for number in flagged_phones(tcpa, "tcpa"):
        assert ("phone", number) in suppressed
    for phone in owner(litigator).phones:
        assert ("phone", e164(phone.number)) in suppressed
    assert suppressed[("phone", "+12175550111")].startswith("BL01")  # the lead's own phone too
    for email in owner(deceased).emails:
        assert ("email", email.email.lower()) in suppressed
    assert suppressed[("email", "late@example.com")].startswith("BD02")

    flags = {i: rest for i, *rest in query("SELECT id::text, litigator, deceased, campaign_status::text, phone_verified, "
                                          "dnc_phones FROM leads")}
    assert flags[ids[2]][:4] == [True, False, "do_not_contact", False]
    assert flags[ids[3]][1:3] == [True, "do_not_contact"]
    assert flagged_phones(dnc, "dnc") <= set(flags[ids[0]][4])
    assert run.metadata["suppressed"] == len(suppressed)
    assert run.checks()["suppressed_channels_are_not_usable"]


def test_sensor_requests_a_run_only_when_leads_are_due(postgres, insert_leads) -> None:
    instance = dg.DagsterInstance.ephemeral()

    def tick(cursor: str | None = None):
        with dg.build_sensor_context(instance=instance, cursor=cursor, resources={"postgres": postgres}) as context:
            return verification_due_sensor(context)

    assert isinstance(tick(), dg.SkipReason)
    insert_leads([{"property_state": "FL"}])
    first = tick()
    second = tick(first.cursor)

    assert [r.run_key for r in first.run_requests] == ["verify-tick-1"]
    assert [r.run_key for r in second.run_requests] == ["verify-tick-2"]  # keys never repeat


def test_definitions_load_with_the_three_resources(postgres, sandbox_url) -> None:
    resources = {"postgres": postgres, "melissa": melissa_resource(sandbox_url), "batchdata": batchdata_resource(sandbox_url)}
    defs = dg.Definitions.merge(verify_defs, dg.Definitions(resources=resources))
    dg.Definitions.validate_loadable(defs)
    spec = next(s for s in defs.resolve_all_asset_specs() if s.key == verified_leads.key)
    assert spec.group_name == "verify" and spec.kinds == {"python", "postgres"} and spec.description
    assert verified_leads.op.pool == "melissa" and verified_leads.op.retry_policy is not None
    assert {spec.name for checks in defs.asset_checks for spec in checks.check_specs} == {
        "suppressed_channels_are_not_usable", "verification_dead_letters", "verified_leads_match_schema",
    }
    assert defs.resolve_job_def("verified_leads_job") and defs.resolve_sensor_def("verification_due_sensor")


def _suppress(postgres, channel: str, value: str, created_at: datetime) -> None:
    with postgres.connection() as conn:
        conn.execute("INSERT INTO suppression_list (channel, value, reason, source, created_at) "
                     "VALUES (%s, %s, 'BD02: email of a deceased person: never email', 'provider', %s)",
                     (channel, value, created_at))


def test_a_channel_suppressed_after_a_lead_was_verified_stops_being_usable(insert_leads, run_verify, query,
                                                                           postgres) -> None:
    # verified usable an hour ago; since then other leads' verdicts suppressed the same e-mail / phone
    an_hour_ago = datetime.now(timezone.utc) - timedelta(hours=1)
    by_email, by_phone = insert_leads([
        {"email": "shared@example.com", "email_verified": True, "verified_at": an_hour_ago},
        {"email": "own@example.com", "email_verified": True, "phone": "+12175550101", "phone_verified": True,
         "verified_at": an_hour_ago},
    ])
    _suppress(postgres, "email", "shared@example.com", an_hour_ago + timedelta(minutes=30))
    _suppress(postgres, "phone", "+12175550101", an_hour_ago + timedelta(minutes=30))

    run = run_verify(raise_on_error=False)

    assert run.metadata["usable_flags_withdrawn"] == 2
    assert sorted(query("SELECT id::text, email_verified, phone_verified FROM leads")) == sorted([
        (by_email, False, False), (by_phone, True, False)])
    assert run.checks()["suppressed_channels_are_not_usable"] is True


def test_a_usable_flag_despite_an_earlier_suppression_is_left_for_the_check_to_catch(insert_leads, run_verify, query,
                                                                                      postgres) -> None:
    an_hour_ago = datetime.now(timezone.utc) - timedelta(hours=1)
    (lead,) = insert_leads([{"email": "known@example.com", "email_verified": True, "verified_at": an_hour_ago}])
    _suppress(postgres, "email", "known@example.com", an_hour_ago - timedelta(hours=2))  # there when judged

    run = run_verify(raise_on_error=False)

    assert run.metadata["usable_flags_withdrawn"] == 0
    assert query("SELECT email_verified FROM leads") == [(True,)]
    assert run.checks()["suppressed_channels_are_not_usable"] is False


def test_the_sweep_skips_a_lead_another_transaction_holds_and_takes_it_next_run(insert_leads, run_verify, query,
                                                                                postgres, clean_db) -> None:
    import psycopg

    an_hour_ago = datetime.now(timezone.utc) - timedelta(hours=1)
    (lead,) = insert_leads([{"email": "shared@example.com", "email_verified": True, "verified_at": an_hour_ago}])
    _suppress(postgres, "email", "shared@example.com", an_hour_ago + timedelta(minutes=30))
    with psycopg.connect(clean_db.admin_dsn) as holder:  # another run's open chunk
        holder.execute("SELECT 1 FROM leads WHERE id = %s FOR UPDATE", (lead,))
        held = run_verify(raise_on_error=False)
    assert held.metadata["usable_flags_withdrawn"] == 0
    assert run_verify(raise_on_error=False).metadata["usable_flags_withdrawn"] == 1
    assert query("SELECT email_verified FROM leads") == [(False,)]
