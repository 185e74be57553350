"""Calling hours and call caps: the federal rule and the stricter state rules we enforce.

One row per state: the allowed local hours for each weekday (``None`` = no calls that day) and the
most calls one person may receive from us in any 24 hours. Every row names its source; the same
table, with the reasoning, is in docs/compliance.md — change both together.

Which states apply to a person: the property's state, the mailing address's state and the state
of the phone's area code (Florida presumes a Florida area code is a Florida resident, and the
other states' rules protect their residents wherever the lead's property is). When several apply,
each one's window must hold, and the smallest cap wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import time

Window = tuple[time, time]  # [start, end): allowed from start, refused at end


def _every_day(start: int, end: int) -> tuple[Window | None, ...]:
    return tuple((time(start), time(end)) for _ in range(7))


@dataclass(frozen=True)
class CallingRule:
    """Allowed local hours per weekday (Monday = 0) and the 24-hour cap, with the rule's source."""

    jurisdiction: str
    hours: tuple[Window | None, ...]
    max_calls_24h: int | None
    source: str

    def window(self, weekday: int) -> Window | None:
        return self.hours[weekday]


#: 47 CFR 64.1200(c)(1): no telephone solicitation before 8 a.m. or after 9 p.m. local time of the
#: called party. "At 21:00" is already after 9 p.m. for us: the window is [08:00, 21:00).
FEDERAL = CallingRule("US", _every_day(8, 21), None, "47 CFR 64.1200(c)(1) (TCPA)")

STATE_RULES: dict[str, CallingRule] = {
    "FL": CallingRule("FL", _every_day(8, 20), 3,
                      "Fla. Stat. 501.616(6)(a)-(b) as amended by ch. 2021-173 (SB 1120); "
                      "Florida area code presumed a Florida resident: Fla. Stat. 501.059 (2021)"),
    "OK": CallingRule("OK", _every_day(8, 20), 3,
                      "Okla. Stat. tit. 15, 775C.4 (Telephone Solicitation Act of 2022)"),
    "MD": CallingRule("MD", _every_day(8, 20), 3,
                      "Md. Code, Com. Law 14-4503 (Stop the Spam Calls Act of 2023)"),
    "WA": CallingRule("WA", _every_day(8, 20), None, "RCW 80.36.390(2)"),
    "CT": CallingRule("CT", _every_day(9, 20), None, "Conn. Gen. Stat. 42-288a(c) as amended by P.A. 23-98"),
    "TX": CallingRule("TX", (*((time(9), time(21)),) * 6, (time(12), time(21))), None,
                      "Tex. Bus. & Com. Code 301.051 (Sunday: noon to 9 p.m.)"),
}


def rules_for(states: set[str] | frozenset[str]) -> list[CallingRule]:
    """The federal rule plus every stricter state rule that applies to one of ``states``."""
    return [FEDERAL, *(STATE_RULES[s] for s in sorted(states) if s in STATE_RULES)]


def calls_cap(rules: list[CallingRule]) -> int | None:
    caps = [r.max_calls_24h for r in rules if r.max_calls_24h is not None]
    return min(caps) if caps else None
