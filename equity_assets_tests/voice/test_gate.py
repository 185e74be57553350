"""The compliance gate: calling windows in every candidate zone, state rules, and every refusal reason."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from equity_assets.voice.gate import CallFacts, ConsentEvidence, check_window, evaluate

UTC = timezone.utc
NY_PHONE = "+12125550100"


def local(zone: str, y: int, m: int, d: int, hh: int, mm: int) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=ZoneInfo(zone))


def allowed(at: datetime, **where) -> bool:
    return check_window(at, **where).allowed


# --------------------------------------------------------------------------- the federal window


@pytest.mark.parametrize(("hh", "mm", "ok"), [(7, 59, False), (8, 0, True), (20, 59, True), (21, 0, False)])
def test_federal_window_edges_in_the_persons_zone(hh: int, mm: int, ok: bool) -> None:
    at = local("America/New_York", 2026, 7, 1, hh, mm).astimezone(UTC)
    assert allowed(at, property_zip="10001", property_state="NY", phone=NY_PHONE) is ok


def test_spring_forward_day() -> None:
    # 2026-03-08: clocks jump 02:00 EST -> 03:00 EDT; 08:00 local is 12:00 UTC, not 13:00.
    assert not allowed(datetime(2026, 3, 8, 11, 59, tzinfo=UTC), property_zip="10001", phone=NY_PHONE)
    assert allowed(datetime(2026, 3, 8, 12, 0, tzinfo=UTC), property_zip="10001", phone=NY_PHONE)
    assert not allowed(datetime(2026, 3, 9, 1, 0, tzinfo=UTC), property_zip="10001", phone=NY_PHONE)  # 21:00 EDT


def test_fall_back_day() -> None:
    # 2026-11-01: clocks fall 02:00 EDT -> 01:00 EST; 08:00 local is 13:00 UTC.
    assert not allowed(datetime(2026, 11, 1, 12, 59, tzinfo=UTC), property_zip="10001", phone=NY_PHONE)
    assert allowed(datetime(2026, 11, 1, 13, 0, tzinfo=UTC), property_zip="10001", phone=NY_PHONE)
    assert allowed(datetime(2026, 11, 2, 1, 59, tzinfo=UTC), property_zip="10001", phone=NY_PHONE)  # 20:59 EST
    assert not allowed(datetime(2026, 11, 2, 2, 0, tzinfo=UTC), property_zip="10001", phone=NY_PHONE)


def test_arizona_in_summer_has_no_dst() -> None:
    # Phoenix stays UTC-7 in July: 08:00 local = 15:00 UTC (Denver is already at 09:00 then).
    phoenix_phone = "+16025550100"
    assert not allowed(datetime(2026, 7, 1, 14, 59, tzinfo=UTC), property_zip="85004", phone=phoenix_phone)
    assert allowed(datetime(2026, 7, 1, 15, 0, tzinfo=UTC), property_zip="85004", phone=phoenix_phone)
    assert allowed(datetime(2026, 7, 2, 3, 59, tzinfo=UTC), property_zip="85004", phone=phoenix_phone)
    assert not allowed(datetime(2026, 7, 2, 4, 0, tzinfo=UTC), property_zip="85004", phone=phoenix_phone)


# --------------------------------------------------------------------------- multi-zone states

# Windows as the statutes say them, written out here rather than read from the rules table.
STATE_WINDOW = {"TX": (9, 21), "FL": (8, 20)}
MULTI_ZONE = [
    ("79901", "TX", "America/Denver"),  # El Paso
    ("79851", "TX", "America/Denver"),  # Hudspeth County
    ("75201", "TX", "America/Chicago"),  # Dallas
    ("32501", "FL", "America/Chicago"),  # Pensacola: panhandle west of the Apalachicola
    ("32301", "FL", "America/New_York"),  # Tallahassee
    ("97914", "OR", "America/Boise"),  # Ontario, Malheur County
    ("97201", "OR", "America/Los_Angeles"),  # Portland
    ("83814", "ID", "America/Los_Angeles"),  # Coeur d'Alene, northern Idaho
    ("83702", "ID", "America/Boise"),  # Boise
    ("42001", "KY", "America/Chicago"),  # Paducah, western Kentucky
    ("40202", "KY", "America/Kentucky/Louisville"),
    ("38103", "TN", "America/Chicago"),  # Memphis
    ("37902", "TN", "America/New_York"),  # Knoxville
    ("49938", "MI", "America/Menominee"),  # Ironwood, Upper Peninsula on Wisconsin
    ("49855", "MI", "America/Detroit"),  # Marquette
    ("46320", "IN", "America/Chicago"),  # Hammond, north-west corner
    ("47708", "IN", "America/Chicago"),  # Evansville, south-west corner
    ("46204", "IN", "America/Indiana/Indianapolis"),
    ("58601", "ND", "America/Denver"),  # Dickinson
    ("58501", "ND", "America/Chicago"),  # Bismarck
    ("57701", "SD", "America/Denver"),  # Rapid City
    ("57501", "SD", "America/Chicago"),  # Pierre
    ("69361", "NE", "America/Denver"),  # Scottsbluff
    ("68508", "NE", "America/Chicago"),  # Lincoln
    ("67758", "KS", "America/Denver"),  # Sharon Springs, Wallace County
    ("67601", "KS", "America/Chicago"),  # Hays
    ("86515", "AZ", "America/Denver"),  # Window Rock: the Navajo Nation keeps DST
    ("85004", "AZ", "America/Phoenix"),
    ("96813", "HI", "Pacific/Honolulu"),
    ("00901", "PR", "America/Puerto_Rico"),
    ("96910", "GU", "Pacific/Guam"),
    ("00802", "VI", "America/St_Thomas"),
]


@pytest.mark.parametrize(("zip_code", "state", "zone"), MULTI_ZONE)
def test_zone_of_each_multi_zone_example(zip_code: str, state: str, zone: str) -> None:
    start, end = STATE_WINDOW.get(state, (8, 21))
    where = {"property_zip": zip_code, "property_state": state}
    assert check_window(local(zone, 2026, 7, 1, 12, 0), **where).zones == (zone,)
    assert not allowed(local(zone, 2026, 7, 1, start - 1, 59), **where)
    assert allowed(local(zone, 2026, 7, 1, start, 0), **where)
    assert allowed(local(zone, 2026, 7, 1, end - 1, 59), **where)
    assert not allowed(local(zone, 2026, 7, 1, end, 0), **where)


def test_phone_area_code_in_another_zone_than_the_property() -> None:
    # New York property, California mobile: 08:30 in New York is 05:30 where the phone may be.
    where = {"property_zip": "10001", "property_state": "NY", "phone": "+14155550100"}
    early = check_window(local("America/New_York", 2026, 7, 1, 8, 30), **where)
    assert not early.allowed
    assert early.zones == ("America/Los_Angeles", "America/New_York")
    assert early.reasons == ("outside_window:America/Los_Angeles",)
    assert allowed(local("America/Los_Angeles", 2026, 7, 1, 8, 0), **where)


def test_multi_zone_area_code_needs_both_zones() -> None:
    # 850 covers Tallahassee (Eastern) and Pensacola (Central): 20:30 Eastern is 19:30 Central, but
    # Florida ends at 20:00, so a Tallahassee-zone call is refused even for a Central property.
    where = {"property_zip": "32501", "property_state": "FL", "phone": "+18505550100"}
    decision = check_window(local("America/Chicago", 2026, 7, 1, 19, 30), **where)
    assert decision.zones == ("America/Chicago", "America/New_York")
    assert decision.reasons == ("outside_window:America/New_York",)


def test_mailing_zip_zone_counts_too() -> None:
    at = local("America/New_York", 2026, 7, 1, 8, 30)
    assert allowed(at, property_zip="10001", phone=NY_PHONE)
    assert not allowed(at, property_zip="10001", mailing_zip="85004", phone=NY_PHONE)


def test_florida_ends_at_eight_pm_and_caps_three_calls() -> None:
    where = {"property_zip": "33130", "property_state": "FL", "phone": "+13055550100"}
    assert allowed(local("America/New_York", 2026, 7, 1, 19, 59), **where)
    refused = check_window(local("America/New_York", 2026, 7, 1, 20, 0), **where)
    assert not refused.allowed and refused.max_calls_24h == 3


def test_florida_area_code_brings_florida_rules_to_a_new_york_property() -> None:
    at = local("America/New_York", 2026, 7, 1, 20, 30)
    assert allowed(at, property_zip="10001", property_state="NY", phone=NY_PHONE)
    decision = check_window(at, property_zip="10001", property_state="NY", phone="+13055550100")
    assert not decision.allowed and "FL" in decision.states


def test_unknown_zone_refuses() -> None:
    decision = check_window(datetime(2026, 7, 1, 16, 0, tzinfo=UTC), property_zip="00000")
    assert decision.reasons == ("unknown_zone:property",)
    # a known phone does not make up for a property nobody can place
    assert check_window(datetime(2026, 7, 1, 16, 0, tzinfo=UTC), property_zip="00000",
                        phone=NY_PHONE).reasons == ("unknown_zone:property",)
    assert check_window(datetime(2026, 7, 1, 16, 0, tzinfo=UTC), property_zip="10001",
                        mailing_zip="00000").reasons == ("unknown_zone:mailing",)
    assert not check_window(datetime(2026, 7, 1, 16, 0, tzinfo=UTC)).allowed


def test_state_without_zip_takes_every_zone_of_the_state() -> None:
    decision = check_window(local("America/New_York", 2026, 7, 1, 20, 30), property_state="TN")
    assert set(decision.zones) >= {"America/Chicago", "America/New_York"}


def test_naive_moment_is_an_error() -> None:
    with pytest.raises(ValueError):
        check_window(datetime(2026, 7, 1, 12, 0), property_zip="10001")


# --------------------------------------------------------------------------- the rest of the gate

AT = local("America/New_York", 2026, 7, 1, 11, 0)
GRANTED = ConsentEvidence(NY_PHONE, "pewc-2026-11-v1", AT - timedelta(days=1))


def facts(**changes) -> CallFacts:
    base = dict(lead_id="l1", dial_number=NY_PHONE, campaign_status="replied", phone_verified=True,
                consent=GRANTED, property_zip="10001", property_state="NY")
    return CallFacts(**{**base, **changes})


def test_a_clean_lead_is_allowed() -> None:
    decision = evaluate(facts(), AT)
    assert decision.allowed and decision.reasons == ()


@pytest.mark.parametrize(("changes", "reason"), [
    ({"consent": None}, "no_consent"),
    ({"consent": ConsentEvidence("+12125550199", "v1", AT - timedelta(days=1))}, "consent_for_other_number"),
    ({"consent": ConsentEvidence(NY_PHONE, "v1", AT - timedelta(days=2), AT - timedelta(days=1))},
     "consent_revoked"),
    ({"consent": ConsentEvidence(NY_PHONE, None, AT - timedelta(days=1))}, "consent_without_evidence"),
    ({"suppressed": True}, "suppressed"),
    ({"phone_verified": False}, "phone_unverified"),
    ({"flags": frozenset({"vendor_dnc"})}, "vendor_dnc"),
    ({"flags": frozenset({"vendor_tcpa"})}, "vendor_tcpa"),
    ({"flags": frozenset({"litigator"})}, "litigator"),
    ({"flags": frozenset({"deceased"})}, "deceased"),
    ({"campaign_status": "do_not_contact"}, "status_do_not_contact"),
    ({"campaign_status": "converted"}, "status_converted"),
    ({"attempts": 5}, "max_attempts"),
    ({"last_attempt_at": AT - timedelta(hours=1)}, "too_soon"),
    ({"next_call_at": AT + timedelta(hours=1)}, "not_due"),
    ({"dial_number": None}, "no_phone"),
])
def test_each_refusal_reason(changes: dict, reason: str) -> None:
    decision = evaluate(facts(**changes), AT)
    assert not decision.allowed
    assert reason in decision.reasons


def test_four_attempts_still_allowed_and_reasons_accumulate() -> None:
    assert evaluate(facts(attempts=4), AT).allowed
    many = evaluate(facts(consent=None, suppressed=True, attempts=5), local("America/New_York", 2026, 7, 1, 22, 0))
    assert {"no_consent", "suppressed", "max_attempts", "outside_window:America/New_York"} <= set(many.reasons)


def test_florida_third_call_in_a_day_is_the_last() -> None:
    fl = facts(dial_number="+13055550100", consent=ConsentEvidence("+13055550100", "v1", AT - timedelta(days=1)),
               property_zip="33130", property_state="FL")
    assert evaluate(fl.__class__(**{**fl.__dict__, "calls_last_24h": 2}), AT).allowed
    assert "state_24h_cap" in evaluate(fl.__class__(**{**fl.__dict__, "calls_last_24h": 3}), AT).reasons


def test_equity_voice_window_command() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "equity_assets.cli", "voice", "window", "--zip", "79901", "--state", "TX",
         "--phone", "+19155550100", "--at", "2026-07-01T14:30:00Z", "--json"],
        capture_output=True, text=True, check=True,
    ).stdout
    answer = json.loads(out)
    assert answer["allowed"] is False  # 08:30 in El Paso; Texas starts at 09:00
    assert answer["zones"] == ["America/Chicago", "America/Denver"]  # 915 reaches Central Culberson County
    assert answer["local_times"] == ["2026-07-01T09:30-05:00", "2026-07-01T08:30-06:00"]
    assert answer["reasons"] == ["outside_window:America/Denver"]
    assert time(9) <= datetime.fromisoformat(answer["local_times"][0]).time()
