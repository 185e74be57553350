"""Where a person may be: the IANA time zones of a ZIP code, a state and a phone number.

Sources, all offline:

* a ZIP5's zone comes from the ``zipcodes`` package (USPS ZIP list with one IANA zone per ZIP);
* ``data/zone_table.csv`` (ours) overrides it for ZIPs whose real local time differs from that
  one zone, gives the candidate zones of a ZIP3 for ZIPs the package does not know, and adds the
  zones of area codes that span a zone line (phonenumbers names one zone for most of them);
* a phone number's zones are what ``phonenumbers`` says for its prefix plus the table's row;
* a state's zones are every zone of its ZIPs (used when the ZIP is missing or unknown).

Every answer is a set: a person is only callable when the window holds in all of them. An empty
set means "unknown", and the compliance gate refuses an unknown zone.
"""

from __future__ import annotations

import csv
import functools
from collections import defaultdict
from collections.abc import Iterable
from importlib import resources
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
import zipcodes
from phonenumbers import geocoder
from phonenumbers import timezone as phone_timezone

TABLE = "zone_table.csv"


def valid_zone(name: str | None) -> bool:
    """True when ``name`` is an IANA zone this machine's zoneinfo can load (the package has junk rows)."""
    if not name or "/" not in name:
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


@functools.cache
def _table() -> dict[tuple[str, str], frozenset[str]]:
    text = resources.files(__package__).joinpath("data", TABLE).read_text(encoding="utf-8")
    rows = csv.DictReader(line for line in text.splitlines() if not line.startswith("#"))
    table = {}
    for row in rows:
        zones = frozenset(row["zones"].split())
        bad = [z for z in zones if not valid_zone(z)]
        if bad:
            raise ValueError(f"{TABLE}: unknown zone(s) {bad} for {row['kind']} {row['key']}")
        table[(row["kind"], row["key"])] = zones
    return table


@functools.cache
def _package_index() -> tuple[dict[str, tuple[str, str]], dict[str, frozenset[str]], dict[str, frozenset[str]]]:
    """(ZIP5 → (state, zone)), (ZIP3 → zones), (state → zones) from the zipcodes package, built once."""
    by_zip: dict[str, tuple[str, str]] = {}
    by_zip3: defaultdict[str, set[str]] = defaultdict(set)
    by_state: defaultdict[str, set[str]] = defaultdict(set)
    for row in zipcodes.list_all():
        zone = row.get("timezone") or ""
        zone = zone if valid_zone(zone) else ""
        by_zip[row["zip_code"]] = (row.get("state") or "", zone)
        if zone:
            by_zip3[row["zip_code"][:3]].add(zone)
            by_state[row.get("state") or ""].add(zone)
    return (by_zip, {k: frozenset(v) for k, v in by_zip3.items()},
            {k: frozenset(v) for k, v in by_state.items()})


def _zip5(raw: str | None) -> str | None:
    digits = "".join(ch for ch in (raw or "") if ch.isdigit())
    return digits[:5] if len(digits) in (5, 9) else None


@functools.lru_cache(maxsize=200_000)
def zip_state(zip_code: str | None) -> str | None:
    """The state the package puts a ZIP in (None when unknown)."""
    z = _zip5(zip_code)
    found = _package_index()[0].get(z) if z else None
    return found[0] or None if found else None


@functools.lru_cache(maxsize=200_000)
def zip_zones(zip_code: str | None) -> frozenset[str]:
    """Candidate zones of a ZIP: table override, else the package's zone, else its ZIP3's zones."""
    z = _zip5(zip_code)
    if z is None:
        return frozenset()
    table = _table()
    if ("zip5", z) in table:
        return table[("zip5", z)]
    by_zip, by_zip3, _ = _package_index()
    _, zone = by_zip.get(z, ("", ""))
    if zone:
        return frozenset({zone})
    return table.get(("zip3", z[:3])) or by_zip3.get(z[:3], frozenset())


@functools.lru_cache(maxsize=200_000)
def state_zones(state: str | None) -> frozenset[str]:
    """Every zone of a state's ZIPs (a state alone does not say where in it a person is)."""
    return _package_index()[2].get((state or "").strip().upper(), frozenset())


def _parsed(e164: str | None) -> phonenumbers.PhoneNumber | None:
    try:
        number = phonenumbers.parse(e164 or "", None)
    except phonenumbers.NumberParseException:
        return None
    return number if phonenumbers.is_valid_number(number) else None


@functools.lru_cache(maxsize=200_000)
def phone_zones(e164: str | None) -> frozenset[str]:
    """Zones of a number's area code: phonenumbers' answer plus the table's multi-zone row."""
    number = _parsed(e164)
    if number is None:
        return frozenset()
    zones = {z for z in phone_timezone.time_zones_for_number(number) if valid_zone(z)}
    if number.country_code == 1:
        area_code = str(number.national_number)[:3]
        zones |= _table().get(("area_code", area_code), frozenset())
    return frozenset(zones)


@functools.lru_cache(maxsize=200_000)
def phone_state(e164: str | None) -> str | None:
    """The US state (or territory) of a number's area code, as phonenumbers describes it."""
    number = _parsed(e164)
    if number is None or number.country_code != 1:
        return None
    description = geocoder.description_for_number(number, "en")
    tail = description.rsplit(",", 1)[-1].strip()
    if len(tail) == 2 and tail.isupper():
        return tail
    return US_STATE_CODES.get(description.strip())


#: phonenumbers names a US area code by its state (or territory) in English.
US_STATE_CODES: dict[str, str] = {
    "Alabama": "AL", "Alaska": "AK", "Arizona": "AZ", "Arkansas": "AR", "California": "CA",
    "Colorado": "CO", "Connecticut": "CT", "Delaware": "DE", "District of Columbia": "DC",
    "Washington D.C.": "DC", "Florida": "FL", "Georgia": "GA", "Hawaii": "HI", "Idaho": "ID",
    "Illinois": "IL", "Indiana": "IN", "Iowa": "IA", "Kansas": "KS", "Kentucky": "KY",
    "Louisiana": "LA", "Maine": "ME", "Maryland": "MD", "Massachusetts": "MA", "Michigan": "MI",
    "Minnesota": "MN", "Mississippi": "MS", "Missouri": "MO", "Montana": "MT", "Nebraska": "NE",
    "Nevada": "NV", "New Hampshire": "NH", "New Jersey": "NJ", "New Mexico": "NM", "New York": "NY",
    "North Carolina": "NC", "North Dakota": "ND", "Ohio": "OH", "Oklahoma": "OK", "Oregon": "OR",
    "Pennsylvania": "PA", "Rhode Island": "RI", "South Carolina": "SC", "South Dakota": "SD",
    "Tennessee": "TN", "Texas": "TX", "Utah": "UT", "Vermont": "VT", "Virginia": "VA",
    "Washington": "WA", "West Virginia": "WV", "Wisconsin": "WI", "Wyoming": "WY",
    "Puerto Rico": "PR", "Guam": "GU", "US Virgin Islands": "VI", "American Samoa": "AS",
    "Northern Mariana Islands": "MP",
}


@functools.lru_cache(maxsize=200_000)
def place_zones(zip_code: str | None, state: str | None) -> frozenset[str]:
    """Zones of one address: its ZIP's; the whole state's when the ZIP is unknown or names another state."""
    zones = zip_zones(zip_code)
    st = (state or "").strip().upper() or None
    if not zones:
        return state_zones(st)
    known_state = zip_state(zip_code)
    if st and known_state and known_state != st:  # ZIP and state disagree: either may be wrong
        return zones | state_zones(st)
    return zones


def union(sets: Iterable[frozenset[str]]) -> frozenset[str]:
    out: set[str] = set()
    for s in sets:
        out |= s
    return frozenset(out)
