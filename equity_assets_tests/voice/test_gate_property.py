"""Property: whatever the lead and whatever the schedule of ticks, the planner never places a call the
rules forbid. The rules are re-stated here independently of the code (zones and hours written out)."""

from __future__ import annotations

from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from hypothesis import event, given, settings
from hypothesis import strategies as st

from equity_assets.voice.gate import DEFAULT_MIN_GAP, CallFacts, ConsentEvidence
from equity_assets.voice.planner import CallCaps, plan_calls

# ZIP / phone → (state, the zones the person may be in), as an atlas says it.
ZIPS = {
    "10001": ("NY", {"America/New_York"}),
    "32501": ("FL", {"America/Chicago"}),
    "79901": ("TX", {"America/Denver"}),
    "85004": ("AZ", {"America/Phoenix"}),
    "96813": ("HI", {"Pacific/Honolulu"}),
    "58601": ("ND", {"America/Denver"}),
    "97914": ("OR", {"America/Boise"}),
    "00000": (None, set()),  # no such ZIP
}
PHONES = {
    "+12125550100": ("NY", {"America/New_York"}),
    "+13055550100": ("FL", {"America/New_York"}),
    "+18505550100": ("FL", {"America/New_York", "America/Chicago"}),
    "+14155550100": ("CA", {"America/Los_Angeles"}),
    "+19155550100": ("TX", {"America/Denver"}),
    "+16025550100": ("AZ", {"America/Phoenix"}),
}


def hours(state: str | None, weekday: int) -> tuple[time, time]:
    if state == "FL":
        return time(8), time(20)
    if state == "TX":
        return (time(12) if weekday == 6 else time(9)), time(21)
    return time(8), time(21)


def permitted(at: datetime, zip_code: str, phone: str) -> bool:
    zip_state, zip_zones = ZIPS[zip_code]
    phone_state, phone_zones = PHONES[phone]
    zones = zip_zones | phone_zones
    states = {zip_state, phone_state}
    if not zip_zones:  # a ZIP nobody knows: we cannot say where the person lives
        return False
    for zone in zones:
        local = at.astimezone(ZoneInfo(zone))
        for state in states:
            start, end = hours(state, local.weekday())
            if not start <= local.time().replace(tzinfo=None) < end:
                return False
    return True


leads = st.fixed_dictionaries({
    "zip": st.sampled_from(sorted(ZIPS)),
    "phone": st.sampled_from(sorted(PHONES)),
    # weighted towards clean leads, so that many schedules do place calls
    "consent": st.sampled_from(["same"] * 6 + ["other", "none", "revoked", "no_evidence"]),
    "suppressed": st.sampled_from([False] * 5 + [True]),
    "flags": st.one_of(st.just(set()), st.just(set()),
                       st.sets(st.sampled_from(["vendor_dnc", "vendor_tcpa", "litigator", "deceased"]), max_size=2)),
    "status": st.sampled_from(["replied", "replied", "replied", "active", "do_not_contact", "converted"]),
    "attempts": st.integers(0, 5),
    "verified": st.sampled_from([True] * 5 + [False]),
})
schedules = st.tuples(
    st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2026, 12, 31), timezones=st.just(timezone.utc)),
    st.lists(st.integers(1, 6 * 60), min_size=1, max_size=40),  # minutes between ticks
)


@settings(max_examples=300, deadline=None, database=None)
@given(lead=leads, schedule=schedules)
def test_no_schedule_ever_places_a_refused_call(lead: dict, schedule: tuple) -> None:
    start, gaps = schedule
    granted = start - timedelta(days=2)
    consent = {
        "same": ConsentEvidence(lead["phone"], "v1", granted),
        "other": ConsentEvidence("+12125550199", "v1", granted),
        "none": None,
        "revoked": ConsentEvidence(lead["phone"], "v1", granted, granted + timedelta(hours=1)),
        "no_evidence": ConsentEvidence(lead["phone"], None, granted),
    }[lead["consent"]]
    placed: list[datetime] = []
    at = start
    for gap in gaps:
        at += timedelta(minutes=gap)
        facts = CallFacts(
            lead_id="l", broker_id="b", dial_number=lead["phone"], campaign_status=lead["status"],
            phone_verified=lead["verified"], consent=consent, attempts=lead["attempts"] + len(placed),
            last_attempt_at=placed[-1] if placed else None,
            calls_last_24h=sum(1 for p in placed if at - p < timedelta(hours=24)),
            suppressed=lead["suppressed"], flags=frozenset(lead["flags"]),
            property_zip=lead["zip"], property_state=ZIPS[lead["zip"]][0],
        )
        if plan_calls([facts], at, open_by_broker={}, open_total=0, caps=CallCaps()).chosen:
            placed.append(at)
    event(f"calls placed: {min(len(placed), 3)}+" if len(placed) >= 3 else f"calls placed: {len(placed)}")

    for i, when in enumerate(placed):
        assert lead["consent"] == "same" and lead["verified"] and not lead["suppressed"] and not lead["flags"]
        assert lead["status"] in ("replied", "active")
        assert lead["attempts"] + i < 5
        assert permitted(when, lead["zip"], lead["phone"]), when
        if i:
            assert when - placed[i - 1] >= DEFAULT_MIN_GAP
        florida = "FL" in (ZIPS[lead["zip"]][0], PHONES[lead["phone"]][0])
        if florida:
            assert sum(1 for p in placed[:i] if when - p < timedelta(hours=24)) < 3


def test_the_property_is_not_vacuous() -> None:
    """The same simulation does place calls when everything is in order."""
    at = datetime(2026, 7, 1, 16, 0, tzinfo=timezone.utc)
    facts = CallFacts(lead_id="l", broker_id="b", dial_number="+12125550100", campaign_status="replied",
                      phone_verified=True, consent=ConsentEvidence("+12125550100", "v1", at - timedelta(days=1)),
                      property_zip="10001", property_state="NY")
    assert permitted(at, "10001", "+12125550100")
    assert plan_calls([facts], at, open_by_broker={}, open_total=0).chosen == [facts]
