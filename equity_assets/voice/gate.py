"""The compliance gate: may we place this AI voice call now? Pure — no database, no clock, no network.

:func:`evaluate` takes everything known about one lead and one moment and returns every reason to
refuse (an empty list means allowed). The reasons, as stable codes:

consent (prior express written consent for the number being dialled, 47 CFR 64.1200(a)(2))
  ``no_consent`` no granted consent; ``consent_revoked`` revoked after it was given;
  ``consent_without_evidence`` a grant without the disclosure version / time we must be able to show;
  ``consent_for_other_number`` the consent names another number than the one we would dial.
the number
  ``no_phone``; ``phone_unverified``; ``suppressed`` (internal do-not-call / revocation list);
  ``vendor_dnc`` / ``vendor_tcpa`` (skip-trace flags); ``litigator``; ``deceased``.
the lead
  ``status_do_not_contact``; ``status_converted``; ``max_attempts`` (5 tries, then do_not_contact);
  ``too_soon`` (minimum gap since the last try); ``not_due`` (a callback time not reached yet);
  ``state_24h_cap`` (e.g. Florida: 3 calls in 24 h).
time
  ``unknown_zone:<property|mailing|phone>`` (that place has no zone we know: refuse rather than guess);
  ``outside_window:<zone>`` once per candidate zone whose local time is outside an applicable window.

The calling window is checked in **every** candidate zone — the property ZIP's, the mailing ZIP's
and the phone area code's (see :mod:`.zones`) — against the federal 08:00–21:00 and every state
rule that applies (:mod:`.rules`), with ``zoneinfo`` doing DST. :func:`check_window` is the time
part alone (what ``equity voice window`` prints).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from . import rules as rules_mod
from . import zones

MAX_ATTEMPTS = 5
DEFAULT_MIN_GAP = timedelta(hours=4)

VENDOR_FLAGS = ("vendor_dnc", "vendor_tcpa", "litigator", "deceased")


@dataclass(frozen=True)
class ConsentEvidence:
    """The latest written consent of a lead, as its audit trail shows it."""

    phone_number: str | None
    disclosure_version: str | None
    granted_at: datetime | None
    revoked_at: datetime | None = None  # a revocation recorded after the grant


@dataclass(frozen=True)
class CallFacts:
    """What the gate needs to know about one lead (the SQL pre-filter reads exactly this)."""

    lead_id: str
    dial_number: str | None
    campaign_status: str
    phone_verified: bool
    consent: ConsentEvidence | None
    attempts: int = 0
    last_attempt_at: datetime | None = None
    calls_last_24h: int = 0
    next_call_at: datetime | None = None
    suppressed: bool = False
    flags: frozenset[str] = field(default_factory=frozenset)  # subset of VENDOR_FLAGS
    property_zip: str | None = None
    property_state: str | None = None
    mailing_zip: str | None = None
    mailing_state: str | None = None
    broker_id: str | None = None
    first_name: str | None = None


@dataclass(frozen=True)
class WindowCheck:
    """The time part of the gate: candidate zones, their local times, the states whose rules apply."""

    allowed: bool
    zones: tuple[str, ...]
    local_times: tuple[str, ...]
    reasons: tuple[str, ...]
    states: tuple[str, ...]
    max_calls_24h: int | None

    def as_dict(self) -> dict[str, object]:
        return {"allowed": self.allowed, "zones": list(self.zones), "local_times": list(self.local_times),
                "reasons": list(self.reasons), "states": list(self.states), "max_calls_24h": self.max_calls_24h}


@dataclass(frozen=True)
class GateDecision:
    allowed: bool
    reasons: tuple[str, ...]
    window: WindowCheck


def reason_code(reason: str) -> str:
    """``outside_window:America/Denver`` → ``outside_window`` (for counting refusals by reason)."""
    return reason.split(":", 1)[0]


def applicable_states(*, property_state: str | None, mailing_state: str | None, phone: str | None,
                      property_zip: str | None = None, mailing_zip: str | None = None) -> frozenset[str]:
    """States whose rules protect this person: of the addresses (stated or by ZIP) and of the area code."""
    found = {property_state, mailing_state, zones.zip_state(property_zip), zones.zip_state(mailing_zip),
             zones.phone_state(phone)}
    return frozenset(s.strip().upper() for s in found if s and s.strip())


def check_window(at: datetime, *, property_zip: str | None = None, property_state: str | None = None,
                 mailing_zip: str | None = None, mailing_state: str | None = None,
                 phone: str | None = None) -> WindowCheck:
    """Is ``at`` inside every applicable calling window in every candidate zone of the person?"""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("the moment to check needs a UTC offset")
    places = {
        "property": zones.place_zones(property_zip, property_state),
        "mailing": zones.place_zones(mailing_zip, mailing_state) if (mailing_zip or mailing_state) else None,
        "phone": zones.phone_zones(phone) if phone else None,
    }
    states = applicable_states(property_state=property_state, mailing_state=mailing_state, phone=phone,
                               property_zip=property_zip, mailing_zip=mailing_zip)
    applicable = rules_mod.rules_for(states)
    cap = rules_mod.calls_cap(applicable)
    unknown = tuple(f"unknown_zone:{name}" for name, found in places.items() if found is not None and not found)
    if unknown:  # a place we cannot put in a zone could be anywhere: refuse rather than guess
        return WindowCheck(False, (), (), unknown, tuple(sorted(states)), cap)
    candidate = zones.union(found for found in places.values() if found)
    ordered = tuple(sorted(candidate))
    local_times, reasons = [], []
    for name in ordered:
        local = at.astimezone(ZoneInfo(name))
        local_times.append(local.isoformat(timespec="minutes"))
        clock = local.time().replace(tzinfo=None)
        if not all(_inside(rule.window(local.weekday()), clock) for rule in applicable):
            reasons.append(f"outside_window:{name}")
    return WindowCheck(not reasons, ordered, tuple(local_times), tuple(reasons), tuple(sorted(states)), cap)


def _inside(window: rules_mod.Window | None, clock) -> bool:
    return window is not None and window[0] <= clock < window[1]


def _consent_reasons(facts: CallFacts) -> list[str]:
    consent = facts.consent
    if consent is None or consent.granted_at is None:
        return ["no_consent"]
    reasons = []
    if consent.revoked_at is not None and consent.revoked_at >= consent.granted_at:
        reasons.append("consent_revoked")
    if not consent.disclosure_version:
        reasons.append("consent_without_evidence")
    if facts.dial_number and consent.phone_number != facts.dial_number:
        reasons.append("consent_for_other_number")
    return reasons


def evaluate(facts: CallFacts, at: datetime, *, min_gap: timedelta = DEFAULT_MIN_GAP) -> GateDecision:
    """Every reason not to call ``facts.dial_number`` at ``at``; allowed only when there is none."""
    reasons = _consent_reasons(facts)
    if not facts.dial_number:
        reasons.append("no_phone")
    elif not facts.phone_verified:
        reasons.append("phone_unverified")
    if facts.suppressed:
        reasons.append("suppressed")
    reasons += [flag for flag in VENDOR_FLAGS if flag in facts.flags]
    if facts.campaign_status in ("do_not_contact", "converted"):
        reasons.append(f"status_{facts.campaign_status}")
    if facts.attempts >= MAX_ATTEMPTS:
        reasons.append("max_attempts")
    if facts.last_attempt_at is not None and at - facts.last_attempt_at < min_gap:
        reasons.append("too_soon")
    if facts.next_call_at is not None and at < facts.next_call_at:
        reasons.append("not_due")
    window = check_window(at, property_zip=facts.property_zip, property_state=facts.property_state,
                          mailing_zip=facts.mailing_zip, mailing_state=facts.mailing_state,
                          phone=facts.dial_number)
    if window.max_calls_24h is not None and facts.calls_last_24h >= window.max_calls_24h:
        reasons.append("state_24h_cap")
    reasons += window.reasons
    return GateDecision(not reasons, tuple(reasons), window)
