"""Free text and place fields: trimmed text, states, ZIPs, counties, APNs.

The normalization policy is described in :mod:`equity_assets.ingest.normalize`.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from equity_assets.ingest.columnar import (
    _NULL_TEXT,
    _blank_to_null,
    _mask,
    _only_where,
    Parsed,
    per_distinct,
    to_arrow,
    to_series,
    _trimmed,
)

# --- free text ----------------------------------------------------------------------------------
def clean_text(values: Any) -> pd.Series:
    """Trim spaces, turn '' into NULL, keep everything else literally (see the text policy)."""
    return to_series(_trimmed(to_arrow(values)))


def _collapse(array: pa.Array) -> pa.Array:
    """Runs of spaces -> one space (tabs and other characters stay: they are data)."""
    return _only_where(array, pc.match_substring(array, "  "),
                       lambda a: pc.replace_substring_regex(a, "  +", " "))


def collapse_spaces(values: Any) -> pd.Series:
    """`clean_text` plus runs of spaces collapsed to one (address lines, cities)."""
    return to_series(per_distinct(lambda array: _collapse(_trimmed(array)))(to_arrow(values)))


# --- states, ZIPs, counties, APNs ---------------------------------------------------------------
STATE_NAMES: Final[dict[str, str]] = {
    "ALABAMA": "AL", "ALASKA": "AK", "ARIZONA": "AZ", "ARKANSAS": "AR", "CALIFORNIA": "CA",
    "COLORADO": "CO", "CONNECTICUT": "CT", "DELAWARE": "DE", "DISTRICT OF COLUMBIA": "DC",
    "FLORIDA": "FL", "GEORGIA": "GA", "HAWAII": "HI", "IDAHO": "ID", "ILLINOIS": "IL",
    "INDIANA": "IN", "IOWA": "IA", "KANSAS": "KS", "KENTUCKY": "KY", "LOUISIANA": "LA",
    "MAINE": "ME", "MARYLAND": "MD", "MASSACHUSETTS": "MA", "MICHIGAN": "MI", "MINNESOTA": "MN",
    "MISSISSIPPI": "MS", "MISSOURI": "MO", "MONTANA": "MT", "NEBRASKA": "NE", "NEVADA": "NV",
    "NEW HAMPSHIRE": "NH", "NEW JERSEY": "NJ", "NEW MEXICO": "NM", "NEW YORK": "NY",
    "NORTH CAROLINA": "NC", "NORTH DAKOTA": "ND", "OHIO": "OH", "OKLAHOMA": "OK", "OREGON": "OR",
    "PENNSYLVANIA": "PA", "RHODE ISLAND": "RI", "SOUTH CAROLINA": "SC", "SOUTH DAKOTA": "SD",
    "TENNESSEE": "TN", "TEXAS": "TX", "UTAH": "UT", "VERMONT": "VT", "VIRGINIA": "VA",
    "WASHINGTON": "WA", "WEST VIRGINIA": "WV", "WISCONSIN": "WI", "WYOMING": "WY",
    "PUERTO RICO": "PR", "GUAM": "GU", "VIRGIN ISLANDS": "VI", "AMERICAN SAMOA": "AS",
    "NORTHERN MARIANA ISLANDS": "MP",
}
# USPS codes of states, DC, territories and military "states".
STATE_CODES: Final[frozenset[str]] = frozenset(STATE_NAMES.values()) | {"AA", "AE", "AP"}


_STATE_NAMES_ARRAY: Final = pa.array(list(STATE_NAMES))
_STATE_CODES_OF_NAMES: Final = pa.array(list(STATE_NAMES.values()))
STATE_CODES_ARRAY: Final = pa.array(sorted(STATE_CODES))


@per_distinct
def _state(array: pa.Array) -> pa.Array:
    upper = pc.utf8_upper(_collapse(_trimmed(array)))
    upper = pc.replace_substring(upper, ".", "")  # "N.Y." -> "NY"
    position = pc.index_in(upper, value_set=_STATE_NAMES_ARRAY)
    return pc.if_else(pc.is_valid(position), pc.take(_STATE_CODES_OF_NAMES, position), upper)


def normalize_state(values: Any) -> pd.Series:
    """Upper-case 2-letter state codes; full names (any case) become codes.

    Unknown values are kept upper-cased, not guessed: the schema rejects them with the value.
    """
    return to_series(_state(to_arrow(values)))


_ZIP_RE: Final = r"^(?P<zip>\d{3,5})(?:\.0+)?(?:[- ]?\d{4})?$"
# The only places whose ZIPs begin with 0, and the prefixes they use: a short ZIP elsewhere
# (6100 in Illinois) is damaged beyond repair, not missing a zero.
ZERO_LED_ZIP_PREFIXES: Final[dict[str, tuple[str, ...]]] = {
    "CT": ("06",), "MA": ("01", "02", "055"), "ME": ("03", "04"), "NH": ("03",), "NJ": ("07", "08"),
    "NY": ("005", "063"), "PR": ("006", "007", "009"), "RI": ("028", "029"), "VT": ("05",),
    "VI": ("008",), "AE": ("09",),
}


def _zip_digits(array: pa.Array) -> pa.Array:
    """The 3-5 leading digits of a (possibly damaged) ZIP / ZIP+4, NULL when it does not look like one."""
    return pc.struct_field(pc.extract_regex(array, _ZIP_RE), [0])


def _zip_or(array: pa.Array, otherwise: pa.Array) -> pa.Array:
    """5-digit repaired ZIP where the text looks like a (possibly damaged) ZIP, else `otherwise`."""
    digits = _zip_digits(array)
    return pc.if_else(pc.is_valid(digits), pc.utf8_lpad(digits, 5, "0"), otherwise)


@per_distinct
def _zip(array: pa.Array) -> pa.Array:
    trimmed = _trimmed(array)
    return _zip_or(trimmed, trimmed)


@per_distinct
def _mailing_zip(array: pa.Array) -> pa.Array:
    trimmed = _trimmed(array)
    return _zip_or(trimmed, _collapse(pc.utf8_upper(trimmed)))


def zip_repairable(padded: str, state: str | None) -> bool:
    """Whether a zero-padded ZIP is plausible for the state (only zero-led states qualify)."""
    return state is not None and padded.startswith(ZERO_LED_ZIP_PREFIXES.get(state, ("-",)))


def _unrepairable_short_zips(raw: pa.Array, zips: pa.Array, states: pa.Array) -> np.ndarray:
    """Rows whose ZIP was short (lost zeros) and whose state does not use zero-led ZIPs."""
    digits = _zip_digits(_trimmed(raw))
    short = np.flatnonzero(_mask(pc.less(pc.utf8_length(digits), 5)))
    bad = np.zeros(len(raw), dtype=bool)
    if short.size:
        padded = zips.take(pa.array(short)).to_pylist()
        state = states.take(pa.array(short)).to_pylist()
        bad[short] = [not zip_repairable(z, s) for z, s in zip(padded, state)]
    return bad


def normalize_zip(values: Any) -> pd.Series:
    """Repair ZIPs to 5 digits: restore leading zeros Excel dropped (6418 -> 06418) and cut ZIP+4.

    Accepts 3-5 digits, optionally followed by a 4-digit extension with or without a dash (or a
    trailing ".0" from a spreadsheet float). Anything else is kept trimmed for the schema to
    reject with the offending value. Blind to the state: uploads go through `repair_zip`.
    """
    return to_series(_zip(to_arrow(values)))


def repair_zip(values: Any, states: Any) -> Parsed:
    """`normalize_zip` per state: zeros are restored only for states whose ZIPs begin with 0 and
    only to a prefix they use; other short ZIPs become NA. Returns (ZIPs, rows whose ZIP was
    dropped)."""
    raw = to_arrow(values)
    zips = _zip(raw)
    bad = _unrepairable_short_zips(raw, zips, to_arrow(states))
    if bad.any():
        zips = pc.if_else(pa.array(bad), _NULL_TEXT, zips)
    return Parsed(to_series(zips), bad)


def normalize_mailing_zip(values: Any, states: Any = None) -> pd.Series:
    """Like `normalize_zip`, but foreign postal codes are kept (upper-cased) rather than invalid."""
    raw = to_arrow(values)
    zips = _mailing_zip(raw)
    if states is not None:
        bad = _unrepairable_short_zips(raw, zips, to_arrow(states))
        if bad.any():  # a damaged US ZIP is kept as written rather than guessed
            zips = pc.if_else(pa.array(bad), _collapse(_trimmed(raw)), zips)
    return to_series(zips)


@per_distinct
def _county(array: pa.Array) -> pa.Array:
    upper = pc.utf8_upper(pc.utf8_trim_whitespace(array))
    upper = pc.replace_substring_regex(upper, r"\s+", " ")
    return _blank_to_null(pc.replace_substring_regex(upper, r"\s*\bCOUNTY$", ""))


def normalize_county(values: Any) -> pd.Series:
    """Upper-case county names without a trailing " County" (``New Haven County`` -> NEW HAVEN)."""
    return to_series(_county(to_arrow(values)))


def _apn(array: pa.Array) -> pa.Array:
    upper = pc.utf8_upper(pc.utf8_trim_whitespace(array))
    spaced = pc.match_substring_regex(upper, r"\s\s|[\t\n\v\f\r]")
    return _blank_to_null(_only_where(upper, spaced, lambda a: pc.replace_substring_regex(a, r"\s+", " ")))


def normalize_apn(values: Any) -> pd.Series:
    """APNs as given but trimmed, upper-cased, whitespace runs -> one space (``DERB M:11 B:4 L:45``)."""
    return to_series(_apn(to_arrow(values)))
