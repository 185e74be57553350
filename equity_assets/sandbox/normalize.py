"""The sandbox's own, deliberately simple, normalization of what callers send.

A real vendor recognises "12 Main Street, Apt 4" and "12 MAIN ST #4" as one address; the sandbox
must too, or its address keys would not be stable. These rules are the sandbox's, not the
pipeline's: they only decide which inputs the simulated vendor treats as the same thing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_STREET_WORDS = {
    "STREET": "ST", "STR": "ST", "AVENUE": "AVE", "AV": "AVE", "AVN": "AVE", "ROAD": "RD",
    "DRIVE": "DR", "DRV": "DR", "BOULEVARD": "BLVD", "BOUL": "BLVD", "LANE": "LN", "COURT": "CT",
    "PLACE": "PL", "TERRACE": "TER", "CIRCLE": "CIR", "HIGHWAY": "HWY", "PARKWAY": "PKWY",
    "SQUARE": "SQ", "TRAIL": "TRL", "ALLEY": "ALY", "CRESCENT": "CRES", "EXPRESSWAY": "EXPY",
    "FREEWAY": "FWY", "PLAZA": "PLZ", "POINT": "PT", "RIDGE": "RDG", "COVE": "CV", "CREEK": "CRK",
    "HEIGHTS": "HTS", "HOLLOW": "HOLW", "ISLAND": "IS", "JUNCTION": "JCT", "MOUNT": "MT",
    "MOUNTAIN": "MTN", "ROUTE": "RTE", "TURNPIKE": "TPKE", "CENTER": "CTR", "PIKE": "PIKE",
    "NORTH": "N", "SOUTH": "S", "EAST": "E", "WEST": "W",
    "NORTHEAST": "NE", "NORTHWEST": "NW", "SOUTHEAST": "SE", "SOUTHWEST": "SW",
}

# Secondary-unit designators -> the abbreviation the sandbox prints.
_UNIT_WORDS = {
    "APT": "APT", "APARTMENT": "APT", "UNIT": "UNIT", "STE": "STE", "SUITE": "STE",
    "RM": "RM", "ROOM": "RM", "SPC": "SPC", "SPACE": "SPC", "#": "#",
}

# USPS state codes and names. The sandbox keeps its own copy: it is sealed
# from the pipeline it simulates vendors for.
_STATE_TABLE = """
    AL Alabama, AK Alaska, AZ Arizona, AR Arkansas, CA California, CO Colorado,
    CT Connecticut, DE Delaware, DC District Of Columbia, FL Florida, GA Georgia, HI Hawaii,
    ID Idaho, IL Illinois, IN Indiana, IA Iowa, KS Kansas, KY Kentucky, LA Louisiana,
    ME Maine, MD Maryland, MA Massachusetts, MI Michigan, MN Minnesota, MS Mississippi,
    MO Missouri, MT Montana, NE Nebraska, NV Nevada, NH New Hampshire, NJ New Jersey,
    NM New Mexico, NY New York, NC North Carolina, ND North Dakota, OH Ohio, OK Oklahoma,
    OR Oregon, PA Pennsylvania, RI Rhode Island, SC South Carolina, SD South Dakota,
    TN Tennessee, TX Texas, UT Utah, VT Vermont, VA Virginia, WA Washington,
    WV West Virginia, WI Wisconsin, WY Wyoming, PR Puerto Rico, GU Guam, VI Virgin Islands,
    AS American Samoa, MP Northern Mariana Islands
"""
_STATES = {name.upper(): code for code, name in (item.strip().split(" ", 1) for item in _STATE_TABLE.split(","))}

_PUNCTUATION = re.compile(r"[.,;:]+")
_SPACES = re.compile(r"\s+")
_EMAIL = re.compile(r"^[a-z0-9!#$%&'*+/=?^_`{|}~.-]+@[a-z0-9-]+(\.[a-z0-9-]+)*\.[a-z]{2,}$")


@dataclass(frozen=True, slots=True)
class NormalAddress:
    """An address reduced to the parts that decide its identity."""

    street: str  # "12 N MAIN ST"
    unit_designator: str  # "APT", "#", "" when no unit
    unit: str  # "4B", "" when no unit
    city: str
    state: str
    zip5: str

    @property
    def locality(self) -> str:
        """City + state when both are known (ZIPs get mangled more often), else the ZIP."""
        return f"{self.city}|{self.state}" if self.city and self.state else self.zip5

    @property
    def building_key(self) -> str:
        """Identity of the building: street + locality, no unit."""
        return f"{self.street}|{self.locality}"

    @property
    def unit_key(self) -> str:
        """Identity of the delivery point: building + unit."""
        return f"{self.building_key}|#{self.unit}"

    @property
    def printable_line1(self) -> str:
        """Standardized first address line, e.g. ``12 N MAIN ST APT 4B``."""
        if not self.unit:
            return self.street
        return f"{self.street} {self.unit_designator} {self.unit}"


def clean_text(value: object) -> str:
    """Upper case, punctuation dropped, whitespace collapsed."""
    text = "" if value is None else str(value)
    return _SPACES.sub(" ", _PUNCTUATION.sub(" ", text.upper())).strip()


def normalize_state(value: object) -> str:
    """Two-letter state code from a code or a full name ("California" -> "CA")."""
    text = clean_text(value)
    return _STATES.get(text, text)


def normalize_zip5(value: object) -> str:
    """Five-digit ZIP; restores leading zeros lost by spreadsheets ("6418" -> "06418")."""
    digits = re.sub(r"\D", "", "" if value is None else str(value))
    if len(digits) >= 5:
        return digits[:5]
    if len(digits) >= 3:
        return digits.zfill(5)
    return ""


def normalize_address(line1: object, line2: object, city: object, state: object, postal_code: object) -> NormalAddress:
    """Reduce address fields to a :class:`NormalAddress` (never raises)."""
    tokens = _tokens(line1)
    street_tokens, designator, unit = _split_unit(tokens, start=1)
    if not unit:
        extra_tokens = _tokens(line2)
        _, designator, unit = _split_unit(extra_tokens, start=0)
        if not unit and len(extra_tokens) == 1:  # a bare "4B" on line 2 is a unit
            designator, unit = "#", extra_tokens[0]
    street = " ".join(_STREET_WORDS.get(token, token) for token in street_tokens)
    return NormalAddress(
        street=street,
        unit_designator=designator,
        unit=unit,
        city=clean_text(city),
        state=normalize_state(state),
        zip5=normalize_zip5(postal_code),
    )


def normalize_phone(value: object) -> str:
    """Digits only, a leading US country code dropped."""
    digits = re.sub(r"\D", "", "" if value is None else str(value))
    if len(digits) == 11 and digits.startswith("1"):
        return digits[1:]
    return digits


def normalize_email(value: object) -> str:
    """Trimmed, lower case."""
    return ("" if value is None else str(value)).strip().lower()


def is_plausible_email(email: str) -> bool:
    """Syntax check only (the vendor's EE01)."""
    return len(email) <= 254 and bool(_EMAIL.match(email))


def _tokens(value: object) -> list[str]:
    # "#" is its own token so that "APT#4", "#4" and "# 4" all read the same way.
    return clean_text(value).replace("#", " # ").split()


def _split_unit(tokens: list[str], *, start: int) -> tuple[list[str], str, str]:
    """Split ``[...street..., designator, unit]`` into street tokens, designator and unit.

    ``start`` is the first position where a designator may appear (1 on line 1: a street never
    starts with "APT"; 0 on line 2).
    """
    for index, token in enumerate(tokens):
        if token in _UNIT_WORDS and index >= start:
            rest = [t for t in tokens[index + 1 :] if t != "#"]
            if rest:
                return tokens[:index], _UNIT_WORDS[token], rest[0].lstrip("0") or "0"
            return tokens[:index], "", ""
    return tokens, "", ""
