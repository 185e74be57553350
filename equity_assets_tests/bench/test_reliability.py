"""The fast parts of `equity bench reliability`: each scenario on a small scale, on the real cluster.

Each scenario creates (and drops) its own database; the sandbox and the killed campaign day run in
processes of their own, as in the bench.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from equity_assets.bench import reliability
from equity_assets.engage import inbox
from equity_assets.engage.classifier import Classification, classify
from equity_assets.voice import planner
from equity_assets.voice.gate import GateDecision

DST_DAYS = (date(2026, 3, 8), date(2026, 11, 1))


def test_provider_faults_leave_every_lead_verified_or_in_the_dlq(test_db) -> None:
    figures = reliability.provider_faults(120, chunk_size=10, throttle_burst=4)
    injected, found = figures["injected"], figures["found"]
    assert injected["injected_5xx"] > 0 and injected["injected_429"] > 0, injected
    assert figures["lost_rows"] == 0, found["lost_leads"]
    assert found["reconciles"] and found["leads"] == 120
    assert found["verified"] > 0


def test_provider_hangs_longer_than_the_client_waits_end_verified_or_in_the_dlq(test_db) -> None:
    figures = reliability.provider_timeouts(60, chunk_size=10, hang_s=5.0, client_timeout_s=1.0)
    injected, found = figures["injected"], figures["found"]
    assert injected["injected_timeouts"] > 0, injected
    assert figures["lost_rows"] == 0, (found["lost_leads"], found["runs"])
    assert found["reconciles"] and found["verified"] > 0 and found["in_dlq"] > 0, found
    # the dead letters say which provider gave up, after how many retries
    assert all("ProviderUnavailableError after N retries" in reason for reason in found["dlq_reasons"]), found
    # a run in which every provider gave up fails loudly, naming them; none fails for another reason
    assert all(run["success"] or "providers unavailable" in (run["failure"] or "") for run in found["runs"]), \
        found["runs"]


def test_campaign_day_killed_mid_push_then_rerun_sends_each_lead_once(test_db) -> None:
    figures = reliability.campaign_kill(300, 2, chunk_size=10, kill_after_leads=40)
    found = figures["found"]
    assert found["killed_mid_push"], figures["injected"]
    assert found["rerun_exit_code"] == 0, found["rerun_error_tail"]
    assert figures["double_sends"] == 0, found["uploaded_twice"]
    assert figures["lost_rows"] == 0, (found["lost"], found["pushed_but_not_in_instantly"])
    assert found["selected"] > 0 and found["leads_in_instantly"] == found["sends_by_status"].get("pushed")


def test_gateway_load_stores_every_accepted_webhook_once_with_several_workers(test_db) -> None:
    figures = reliability.gateway_load(rate=150, seconds=2, workers=2)
    found = figures["found"]
    assert figures["gateway_errors"] == 0, found["first_errors"]
    assert figures["lost_rows"] == 0, (found["missing_from_inbox"], found["uploads_missing"])
    assert figures["webhooks_accepted"] == figures["webhooks_in_inbox"] > 300 and found["inbox_exactly_once"]
    assert {"instantly:ok", "vapi:ok", "upload:ok"} <= set(found["by_kind"]) and found["uploads_accepted"] >= 3
    assert found["cpu_cores_used"]["gateway"] > 0


def test_no_call_outside_the_window_without_consent_or_e_mail_to_a_suppressed_address(test_db) -> None:
    figures = reliability.compliance(120, days=(*DST_DAYS, date(2026, 11, 2)), reply_share=0.5)
    injected, found = figures["injected"], figures["found"]
    assert figures["compliance_violations"] == 0, found["violations"]
    assert injected["dst_days"] == [d.isoformat() for d in DST_DAYS]
    assert injected["revoked_mid_run"] > 0 and injected["replies"] > injected["revoked_mid_run"]
    assert injected["households_sharing_an_address"] > 0 and injected["pre_suppressed_addresses"] > 0
    assert found["allowed"] > 0 and found["refusals_by_reason"].get("outside_window", 0) > 0
    assert found["refusals_by_reason"].get("consent_revoked", 0) > 0
    # both DST changes fall on a Sunday; Monday 2 November has its 06:00 PT campaign day
    assert found["campaign_days"] == 1 and found["emails_selected"] > 0
    assert found["reply_outcomes"].get("unsubscribe", 0) > 0


def test_every_revoking_reply_of_the_month_is_read_as_a_revocation() -> None:
    # the month's oracle trusts its own list; the classifier must agree with every entry of it
    missed = [text for text in reliability.REVOKING_REPLIES if not classify(text, "Re: Your home's equity").revocation]
    assert missed == []
    assert not classify("Yes, call me tomorrow after 5", "Re: Your home's equity").revocation


def test_the_compliance_run_names_the_calls_a_broken_gate_would_place(test_db, monkeypatch) -> None:
    def allow_everything(facts, at, **_):
        return GateDecision(True, (), None)

    monkeypatch.setattr(planner, "evaluate", allow_everything)
    figures = reliability.compliance(40, days=(date(2026, 11, 1),), step=timedelta(hours=2))
    kinds = figures["found"]["violations_by_kind"]
    assert figures["compliance_violations"] > 0
    assert kinds.get("outside_window", 0) > 0 and kinds.get("no_valid_consent", 0) > 0
    call = next(v for v in figures["found"]["violations"] if v["kind"] == "call")
    assert {"lead", "at", "phone", "why"} <= set(call)


def test_the_compliance_run_names_a_revocation_the_classifier_would_miss(test_db, monkeypatch) -> None:
    def never_revoke(event_type, text, subject):
        return Classification("question", False, 0.4, "fallback")

    monkeypatch.setattr(inbox, "classify_event", never_revoke)
    figures = reliability.compliance(40, days=(date(2026, 11, 2),), reply_share=1.0)
    kinds = figures["found"]["violations_by_kind"]
    assert kinds.get("revocation_not_applied", 0) > 0, kinds
    missed = next(v for v in figures["found"]["violations"] if v["kind"] == "revocation_not_applied")
    assert missed["reply"] in reliability.REVOKING_REPLIES and "email_not_suppressed" in missed["why"]


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        # 850 reaches Central and Eastern: 08:30 in Tallahassee is still 07:30 in Pensacola.
        (datetime(2026, 7, 1, 12, 30, tzinfo=timezone.utc), ["outside_window:America/Chicago@07:30"]),
        (datetime(2026, 7, 1, 14, 0, tzinfo=timezone.utc), []),
        # 01:30 UTC is 21:30 EDT the night before fall-back, and 20:30 EST the night after it.
        (datetime(2026, 11, 1, 1, 30, tzinfo=timezone.utc), ["outside_window:America/New_York@21:30"]),
        (datetime(2026, 11, 2, 1, 30, tzinfo=timezone.utc), []),
    ],
)
def test_the_oracle_checks_every_zone_of_the_place_and_the_phone(at, expected) -> None:
    truth = {"zones": {"America/New_York", "America/Chicago"}, "consent": "granted", "consent_valid_until": None}
    assert reliability.oracle_violations(truth, at) == expected


def test_the_oracle_refuses_a_consent_revoked_before_the_call() -> None:
    revoked = datetime(2026, 7, 1, 15, 0, tzinfo=timezone.utc)
    truth = {"zones": {"America/New_York"}, "consent": "revoked", "consent_valid_until": revoked}
    assert reliability.oracle_violations(truth, revoked) == ["no_valid_consent:revoked"]
    assert reliability.oracle_violations(truth, datetime(2026, 7, 1, 14, 0, tzinfo=timezone.utc)) == []
