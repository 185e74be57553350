"""Vectorized normalization of uploaded lead columns (pandas Series in, pandas Series out).

Every function takes a pandas Series of text (any string dtype, or object) and works on the whole
column at once with Arrow compute kernels (`pyarrow.compute`, RE2 regexes), so per-row Python
work is avoided. Only what cannot be vectorized runs in Python, and then once per *distinct*
value or only for the rows that need it: usaddress for unusual address lines, email-validator for
unusual addresses and distinct domains, SHA-256 for the address hash. Returned Series are
Arrow-backed: text is ``string[pyarrow]``, numbers ``Int64`` / ``Float64``, flags ``boolean``,
dates ``datetime64[ns]``, lists ``list<string>[pyarrow]``; missing is NA, never ``""``.
(Requires pyarrow; the kernels release the GIL, so chunks normalize in parallel threads.)

Text policy
    Values are trimmed of spaces (only U+0020) and an empty value becomes NULL. Nothing else is
    removed: tabs, carriage returns, zero-width and bidi-override characters, SQL text, formula
    prefixes (``= + - @``) and the words "null"/"None" are data and are stored literally. They are
    inert in PostgreSQL (values travel via COPY, never through SQL text); escaping for spreadsheets
    is the job of whatever exports them again.

Rejects vs. dropped values
    A value that cannot be read as its column's type (date, integer, number, boolean) marks the
    row invalid (the caller turns it into a reject with the column and reason). A phone number,
    e-mail address or MAK that is invalid is *dropped* (set NULL) and reported, but never sinks
    the row: the lead is the property; contacts are enrichment that skip tracing can refill.
    That holds even when the bad value was the row's only contact. A phone whose "Phone N DNC"
    cell is anything but blank/"No" is listed in ``dnc_phones`` (it also stays in ``phone`` /
    ``alt_phones``, the record of what is known): callers must never dial a number listed there.
    Mailing ZIPs and states are cleaned the same way but not validated: owners abroad are leads.

Address identity (`address_identity`) and hash (`addr_hash`)
    ``addr_std = street + "|" + unit`` (stored with each lead), ``addr_bare`` = the same without
    the street type, ``addr_city`` = the normalized city.
    ``addr_hash = sha256_hex(addr_std + "|" + zip5)`` when the row has a valid 5-digit ZIP, else
    ``sha256_hex(addr_std + "|" + city + "|" + state)`` when it has city and a valid state; NULL
    otherwise (the SQL function `lead_address_hash` computes the same). UTF-8 bytes, lower-case
    hex. A whole "street, city, ST ZIP" in the address cell is split by usaddress and its city,
    state and ZIP fill the row's empty locality cells. The parts are:

    * ``street``: the address line, Unicode-decomposed with combining marks removed (Peña → PENA),
      upper-cased; ``.`` ``'`` ``’`` deleted; ``#`` spaced out; every other run of characters
      that are not letters or digits becomes one space; trimmed. A trailing unit
      (``APT 4``, ``# 4``, ``UNIT 4``, ``STE 4``, ``APT4``, ``… REAR``, or a bare number right
      after a street suffix, ``5 MIDDLESEX AVE 25``, except after HWY/RD/RTE-like types where it
      is a route number) is cut off into the unit.
      Each remaining token is replaced by its USPS standard abbreviation: street suffixes per
      USPS Publication 28 appendix C1 (STREET → ST, AVENUE/AV/AVEN → AVE, …), directionals
      (NORTH → N, SOUTHWEST → SW), SAINT → ST. Lines that do not start with a house number or
      carry a whole "street, city, state ZIP" are parsed with usaddress instead (falling back to
      the string above if usaddress cannot label them).
    * ``unit``: the ``Unit #`` column if given, else the unit cut from the line, cleaned the same
      way, designators removed (``Apt 4`` = ``#4`` = ``Unit 4`` = ``Ste 4`` = ``APT. 4`` → ``4``),
      spaces and leading zeros removed (``04-B`` → ``4B``); designators that take no number
      become their abbreviation (``Rear`` → ``REAR``, ``Basement`` → ``BSMT``). ``""`` when none.
    * ``zip5``: the repaired ZIP (see `normalize_zip`). ``city``: cleaned like ``street``
      (tokens abbreviated too, so SAINT LOUIS = ST. LOUIS). ``state``: 2-letter code.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from functools import lru_cache, wraps
from typing import Any, Final, NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

ArrowFn = Callable[[pa.Array], Any]

# --- Arrow <-> pandas ---------------------------------------------------------------------------
_STRING_DTYPE: Final = pd.StringDtype("pyarrow")
_NULL_TEXT: Final = pa.scalar(None, pa.string())


def _types_mapper(arrow_type: pa.DataType) -> Any:
    """Map Arrow types to the nullable pandas dtypes the staging frame uses."""
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return _STRING_DTYPE
    if pa.types.is_boolean(arrow_type):
        return pd.BooleanDtype()
    if pa.types.is_integer(arrow_type):
        return pd.Int64Dtype()
    if pa.types.is_floating(arrow_type):
        return pd.Float64Dtype()
    if pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type):
        return pd.ArrowDtype(arrow_type)
    return None  # timestamps -> datetime64[ns]


def to_arrow(values: pd.Series | pa.Array | pa.ChunkedArray | Sequence[Any]) -> pa.Array:
    """A contiguous Arrow array of the values (zero-copy for Arrow-backed Series)."""
    if isinstance(values, pa.ChunkedArray):
        return _small_offsets(values.combine_chunks())
    if isinstance(values, pa.Array):
        return _small_offsets(values)
    if isinstance(values, pd.Series) and isinstance(values.dtype, (pd.StringDtype, pd.ArrowDtype)):
        array = pa.array(values.array)
        return _small_offsets(array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array)
    # Plain Python / object data: anything that is not a str is treated as missing.
    items = values.tolist() if isinstance(values, pd.Series) else list(values)
    return pa.array([v if isinstance(v, str) else None for v in items], type=pa.string())


def _small_offsets(array: pa.Array) -> pa.Array:
    """large_string -> string (pandas stores large_string; kernels want one type per call)."""
    return array.cast(pa.string()) if pa.types.is_large_string(array.type) else array


def to_series(array: pa.Array | pa.ChunkedArray) -> pd.Series:
    """An Arrow-backed pandas Series with the staging dtypes (see the module docstring)."""
    chunked = array if isinstance(array, pa.ChunkedArray) else pa.chunked_array([array])
    if pa.types.is_date(chunked.type):
        chunked = chunked.cast(pa.timestamp("ns"))
    return chunked.to_pandas(types_mapper=_types_mapper)


class Parsed(NamedTuple):
    """A typed column plus the rows whose non-blank input could not be read as that type."""

    values: pd.Series
    invalid: np.ndarray


def _mask(array: pa.Array) -> np.ndarray:
    """A boolean Arrow array as numpy, NULL counted as False."""
    return np.asarray(pc.fill_null(array, False).to_numpy(zero_copy_only=False), dtype=bool)


def _as_parsed(result: tuple[pa.Array, pa.Array]) -> Parsed:
    """(values, invalid) Arrow pair -> `Parsed`."""
    values, invalid = result
    return Parsed(to_series(values), _mask(invalid))


def per_distinct(func: ArrowFn) -> ArrowFn:
    """Run an Arrow column function once per distinct value, then spread the result to the rows.

    Most columns of a lead list repeat a few thousand values (states, ZIPs, dates, amounts), so
    dictionary-encoding (a hash pass) and working on the dictionary beats regexes over every row.
    The function may return one array or a tuple of arrays aligned with its input.
    """

    @wraps(func)
    def run(array: pa.Array) -> Any:
        if _mostly_distinct(array):
            return func(array)
        encoded = pc.dictionary_encode(array)
        result = func(encoded.dictionary)
        if isinstance(result, tuple):
            return tuple(pc.take(part, encoded.indices) for part in result)
        return pc.take(result, encoded.indices)

    return run


def _mostly_distinct(array: pa.Array, sample: int = 2048) -> bool:
    """True when a sample says dictionary-encoding would not shrink the work (e.g. balances)."""
    if len(array) <= 2 * sample:
        return False
    return len(pc.unique(array.slice(0, sample))) > sample // 2


def _only_where(array: pa.Array, needed: pa.Array, func: ArrowFn) -> pa.Array:
    """func(array) applied only to the rows where `needed` is true (others pass through)."""
    rows = _mask(needed)
    count = int(rows.sum())
    if count == 0:
        return array
    if count * 2 > len(array):
        return pc.if_else(pa.array(rows), func(array), array)
    positions = np.flatnonzero(rows)
    return _scatter(array, positions, func(array.take(pa.array(positions))))


def _scatter(base: pa.Array, positions: np.ndarray, values: pa.Array) -> pa.Array:
    """`base` with `values` written at `positions` (in order)."""
    index = np.full(len(base), -1, dtype=np.int64)
    index[positions] = np.arange(positions.size)
    return pc.if_else(pa.array(index >= 0), pc.take(values, pa.array(index, mask=index < 0)), base)


def _blank_to_null(array: pa.Array) -> pa.Array:
    """NULL where the value is the empty string (a new validity bitmap; the text is not copied)."""
    keep = pc.and_(pc.is_valid(array), pc.greater(pc.binary_length(array), 0))
    if array.offset == 0 and keep.offset == 0 and keep.null_count == 0:
        buffers = array.buffers()
        return pa.Array.from_buffers(array.type, len(array), [keep.buffers()[1], *buffers[1:]])
    return pc.if_else(keep, array, pa.scalar(None, array.type))


def _trimmed(array: pa.Array) -> pa.Array:
    """Trimmed of spaces, '' -> NULL: the shared first step of every parser."""
    padded = pc.or_(pc.starts_with(array, " "), pc.ends_with(array, " "))
    if pc.any(padded).as_py():
        array = pc.utf8_trim(array, " ")
    return _blank_to_null(array)


def _invalid(present: pa.Array, ok: pa.Array) -> pa.Array:
    """Invalid = a non-blank input that did not parse."""
    return pc.and_(pc.is_valid(present), pc.invert(pc.fill_null(ok, False)))


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


# --- typed columns ------------------------------------------------------------------------------
_TRUE_WORDS: Final = pa.array(["yes", "y", "true", "t", "1"])
_FALSE_WORDS: Final = pa.array(["no", "n", "false", "f", "0"])


@per_distinct
def _bool(array: pa.Array) -> tuple[pa.Array, pa.Array]:
    word = pc.utf8_lower(_trimmed(array))
    is_true = pc.is_in(word, value_set=_TRUE_WORDS)
    known = pc.or_(is_true, pc.is_in(word, value_set=_FALSE_WORDS))
    return pc.if_else(known, is_true, pa.scalar(None, pa.bool_())), _invalid(word, known)


def parse_bool(values: Any) -> Parsed:
    """Yes/No, Y/N, True/False, T/F, 1/0 in any case; blank -> NA; anything else invalid."""
    return _as_parsed(_bool(to_arrow(values)))


@per_distinct
def _flag(array: pa.Array) -> pa.Array:
    word = pc.utf8_lower(_trimmed(array))
    no = pc.fill_null(pc.is_in(word, value_set=_FALSE_WORDS), False)
    return pc.and_(pc.is_valid(word), pc.invert(no))


def parse_flag(values: Any) -> pd.Series:
    """Lenient yes/no for compliance flags: blank or a "no" word -> False, anything else -> True.

    Used for "Phone N DNC": a value such as "DNC" or "Do Not Call" must count as flagged.
    """
    return to_series(pc.fill_null(_flag(to_arrow(values)), False))


_INT32_MAX: Final = 2**31 - 1


def _all_digits(text: pa.Array) -> bool:
    """True when every non-null value is plain ASCII digits: the common case, cast directly."""
    return pc.all(pc.ascii_is_decimal(text)).as_py() is not False


@per_distinct
def _int(array: pa.Array) -> tuple[pa.Array, pa.Array]:
    text = _trimmed(array)
    if _all_digits(text) and (pc.max(pc.binary_length(text)).as_py() or 0) <= 9:
        return pc.cast(text, pa.int64()), pa.nulls(len(text), pa.bool_())
    text = pc.replace_substring(text, ",", "")
    ok = pc.match_substring_regex(text, r"^[+-]?\d{1,12}(?:\.0*)?$")
    digits = pc.replace_substring_regex(text, r"\.0*$", "")
    number = pc.cast(pc.if_else(ok, digits, _NULL_TEXT), pa.int64())
    ok = pc.and_(ok, pc.less_equal(pc.abs(number), _INT32_MAX))
    return pc.if_else(ok, number, pa.scalar(None, pa.int64())), _invalid(text, ok)


def parse_int(values: Any) -> Parsed:
    """Whole numbers: thousands separators allowed (``1,234``), ``3.0`` accepted, PostgreSQL int4 range."""
    return _as_parsed(_int(to_arrow(values)))


_NUMBER_RE: Final = r"^[+-]?(?:\d+\.?\d*|\.\d+)$"


def _decimal(text: pa.Array) -> tuple[pa.Array, pa.Array]:
    """Decimal text -> float64; text that does not match the number pattern is invalid."""
    if _all_digits(text):
        return pc.cast(text, pa.float64()), pa.nulls(len(text), pa.bool_())
    ok = pc.match_substring_regex(text, _NUMBER_RE)
    number = pc.cast(pc.if_else(ok, text, _NULL_TEXT), pa.float64())
    return number, _invalid(text, ok)


@per_distinct
def _money(array: pa.Array) -> tuple[pa.Array, pa.Array]:
    text = _trimmed(array)
    if _all_digits(text):
        return pc.cast(text, pa.float64()), pa.nulls(len(text), pa.bool_())
    text = pc.replace_substring_regex(text, r"[$,\s]", "")
    # Accountants write negatives in parentheses: (1,234) = -1234.
    parens = pc.match_substring_regex(text, r"^\(.*\)$")
    inner = pc.utf8_slice_codeunits(text, 1, -1)
    text = pc.if_else(parens, pc.binary_join_element_wise("-", inner, ""), text)
    return _decimal(_blank_to_null(text))


@per_distinct
def _percent(array: pa.Array) -> tuple[pa.Array, pa.Array]:
    text = pc.replace_substring_regex(_trimmed(array), r"\s*%$", "")
    return _decimal(_blank_to_null(pc.replace_substring(text, ",", "")))


@per_distinct
def _number(array: pa.Array) -> tuple[pa.Array, pa.Array]:
    return _decimal(pc.replace_substring(_trimmed(array), ",", ""))


def parse_money(values: Any) -> Parsed:
    """Amounts such as ``$1,234``, ``1234``, ``1234.50``, ``-12``, ``(12)`` (negative); blank -> NA."""
    return _as_parsed(_money(to_arrow(values)))


def parse_percent(values: Any) -> Parsed:
    """Percent numbers: ``22.22`` or ``22.22%`` both mean 22.22 (percent points)."""
    return _as_parsed(_percent(to_arrow(values)))


def parse_number(values: Any) -> Parsed:
    """Plain decimal numbers (``2.5``, ``1,200``)."""
    return _as_parsed(_number(to_arrow(values)))


_ISO_DATE_RE: Final = r"^(?P<y>\d{4})-(?P<m>\d{1,2})-(?P<d>\d{1,2})(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?$"
_US_DATE_RE: Final = r"^(?P<m>\d{1,2})/(?P<d>\d{1,2})/(?P<y>\d{4})$"
DATE_RANGE: Final = (1800, 2100)  # years accepted; also keeps datetime64[ns] safe


@per_distinct
def _date(array: pa.Array) -> tuple[pa.Array, pa.Array]:
    text = _trimmed(array)
    n = len(text)
    parts = {name: np.zeros(n, dtype=np.int64) for name in "ymd"}
    matched = np.zeros(n, dtype=bool)
    for pattern in (_ISO_DATE_RE, _US_DATE_RE):
        found = pc.extract_regex(text, pattern)
        hit = _mask(pc.is_valid(found)) & ~matched
        if hit.any():
            for name, target in parts.items():
                field = pc.struct_field(found, [_group_index(pattern, name)])
                numbers = np.asarray(pc.fill_null(pc.cast(pc.if_else(pc.is_valid(found), field, "0"), pa.int64()), 0))
                target[hit] = numbers[hit]
            matched |= hit
    ok = matched & _valid_calendar(parts["y"], parts["m"], parts["d"])
    dates = pa.array(_dates_from_parts(parts["y"], parts["m"], parts["d"], ok), mask=~ok)
    return dates, _invalid(text, pa.array(ok))


def parse_date(values: Any) -> Parsed:
    """``YYYY-MM-DD`` (optionally with a time) or ``M/D/YYYY``; impossible dates are invalid.

    Calendar checks are done with numpy on the extracted parts (Feb 30 and month 13 fail), not
    left to strptime, which rolls some of them over silently.
    """
    return _as_parsed(_date(to_arrow(values)))


def _group_index(pattern: str, name: str) -> int:
    """Position of a named group in a regex (extract_regex orders struct fields that way)."""
    return list(re.compile(pattern).groupindex).index(name)


def _valid_calendar(year: np.ndarray, month: np.ndarray, day: np.ndarray) -> np.ndarray:
    """True where (year, month, day) is a real date inside DATE_RANGE."""
    leap = ((year % 4 == 0) & (year % 100 != 0)) | (year % 400 == 0)
    days_in_month = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])
    safe_month = np.clip(month, 1, 12)
    limit = days_in_month[safe_month - 1] + ((safe_month == 2) & leap)
    in_range = (year >= DATE_RANGE[0]) & (year <= DATE_RANGE[1])
    return in_range & (month >= 1) & (month <= 12) & (day >= 1) & (day <= limit)


def _dates_from_parts(year: np.ndarray, month: np.ndarray, day: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """datetime64[D] from parts (rows not ok get an arbitrary valid date; callers mask them)."""
    y = np.where(ok, year, 2000) - 1970
    m = np.where(ok, month, 1) - 1
    d = np.where(ok, day, 1) - 1
    months = y.astype("datetime64[Y]").astype("datetime64[M]") + m.astype("timedelta64[M]")
    return months.astype("datetime64[D]") + d.astype("timedelta64[D]")


@per_distinct
def _list(array: pa.Array) -> pa.Array:
    parts = pc.split_pattern_regex(_trimmed(array), r"[,;|]")
    return _compact_lists(parts, pc.utf8_trim(pc.list_flatten(parts), " "))


def split_list(values: Any) -> pd.Series:
    """Split a list cell on ``,`` ``;`` or ``|`` into trimmed, non-empty items; no items -> NA."""
    return to_series(_list(to_arrow(values)))


def _compact_lists(lists: pa.Array, items: pa.Array) -> pa.Array:
    """Rebuild `lists` from its (transformed) flattened `items`, dropping null/empty items."""
    parent = np.asarray(pc.list_parent_indices(lists))
    keep = _mask(pc.not_equal(items, ""))
    return _lists_from(parent[keep], items.filter(pa.array(keep)), len(lists))


def _lists_from(rows: np.ndarray, values: pa.Array, n: int) -> pa.Array:
    """A list<string> array of length n from (row, value) pairs sorted by row; empty -> NULL."""
    counts = np.bincount(rows, minlength=n)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), values, mask=pa.array(counts == 0))


def parse_mak(values: Any) -> Parsed:
    """Melissa Address Keys: exactly 10 digits; anything else is invalid (the caller drops it)."""
    text = _blank_to_null(pc.utf8_trim_whitespace(to_arrow(values)))
    ok = pc.match_substring_regex(text, r"^\d{10}$")
    return _as_parsed((pc.if_else(ok, text, _NULL_TEXT), _invalid(text, ok)))


# --- phones -------------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def _nanp_valid_pattern() -> str:
    """One anchored RE2 pattern matching the national numbers phonenumbers deems valid in +1.

    Built from libphonenumber's own metadata (every NANP region, every number type), so the
    vectorized check agrees with `phonenumbers.is_valid_number` for 10-digit +1 numbers.
    """
    import phonenumbers

    patterns: list[str] = []
    for region in phonenumbers.COUNTRY_CODE_TO_REGION_CODE[1]:
        metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
        if metadata is None:
            continue
        for name in ("fixed_line", "mobile", "toll_free", "premium_rate", "shared_cost",
                     "personal_number", "voip", "pager", "uan", "voicemail"):
            desc = getattr(metadata, name, None)
            if desc is not None and desc.national_number_pattern and 10 in (desc.possible_length or (10,)):
                patterns.append(desc.national_number_pattern)
    return "^(?:" + "|".join(f"(?:{p})" for p in dict.fromkeys(patterns)) + ")$"


def _phone(array: pa.Array) -> tuple[pa.Array, pa.Array]:
    text = _trimmed(array)
    compact = pc.replace_substring_regex(text, r"[\s().\-]", "")
    simple = pc.extract_regex(compact, r"^(?:\+?1)?(?P<national>\d{10})$")
    national = pc.struct_field(simple, [0])
    simple_ok = pc.and_(pc.is_valid(simple), pc.match_substring_regex(national, _nanp_valid_pattern()))
    e164 = pc.if_else(simple_ok, pc.binary_join_element_wise("+1", national, ""), _NULL_TEXT)
    unusual = pc.and_(pc.is_valid(text), pc.invert(pc.fill_null(pc.is_valid(simple), False)))
    e164 = _replace_rows(e164, unusual, text, _phone_via_library)
    return e164, _invalid(text, pc.is_valid(e164))


def normalize_phone(values: Any) -> Parsed:
    """Phones to E.164 (``+12035551234``), region US; invalid non-blank numbers are flagged.

    Fast path, vectorized: after removing spaces, dots, dashes and parentheses, a value that is
    10 digits (optionally after ``1`` or ``+1``) is checked against libphonenumber's NANP
    patterns. Everything else (extensions, letters, other countries) goes through
    `phonenumbers.parse` once per distinct value.
    """
    return _as_parsed(_phone(to_arrow(values)))


def _phone_via_library(value: str) -> str | None:
    """E.164 of one phone using phonenumbers (region US), or None when invalid."""
    import phonenumbers

    try:
        number = phonenumbers.parse(value, "US")
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _replace_rows(result: pa.Array, needed: pa.Array, text: pa.Array, func: Callable[[str], str | None]) -> pa.Array:
    """`result` with the `needed` rows recomputed as func(text), once per distinct text value."""
    positions = np.flatnonzero(_mask(needed))
    if positions.size == 0:
        return result
    subset = per_distinct(
        lambda distinct: pa.array([None if v is None else func(v) for v in distinct.to_pylist()], type=pa.string())
    )(text.take(pa.array(positions)))
    return _scatter(result, positions, subset)


# --- e-mail -------------------------------------------------------------------------------------
# RFC 5322 dot-atom local part (ASCII) and LDH domain labels with an alphabetic TLD: anything
# this matches is checked per *domain* by email-validator; anything else per distinct address.
_SIMPLE_EMAIL_RE: Final = (
    r"^[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?P<domain>(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63})$"
)


def _email(array: pa.Array) -> tuple[pa.Array, pa.Array]:
    text = _blank_to_null(pc.utf8_lower(pc.utf8_trim_whitespace(array)))
    simple = pc.extract_regex(text, _SIMPLE_EMAIL_RE)
    # RFC 5321 limits: 254 characters in all, 64 before the "@". Punycode domains take the slow
    # path because email-validator returns them in Unicode form.
    short = pc.and_(pc.less_equal(pc.utf8_length(text), 254), pc.less_equal(pc.find_substring(text, "@"), 64))
    ascii_domain = pc.invert(pc.fill_null(pc.match_substring(text, "xn--"), False))
    simple_rows = pc.fill_null(pc.and_(pc.and_(pc.is_valid(simple), short), ascii_domain), False)
    domain = pc.struct_field(simple, [0])
    good_domain = pc.fill_null(pc.is_in(domain, value_set=_domains_ok(domain.filter(simple_rows))), False)
    result = pc.if_else(pc.and_(simple_rows, good_domain), text, _NULL_TEXT)
    unusual = pc.and_(pc.is_valid(text), pc.invert(simple_rows))
    result = _replace_rows(result, unusual, text, _email_via_library)
    return result, _invalid(text, pc.is_valid(result))


def normalize_email(values: Any) -> Parsed:
    """Lower-cased e-mail addresses that pass email-validator (no DNS); invalid non-blank flagged."""
    return _as_parsed(_email(to_arrow(values)))


def _domains_ok(domains: pa.Array) -> pa.Array:
    """The distinct domains email-validator accepts (syntax and special-use rules, no DNS)."""
    from email_validator import EmailNotValidError, validate_email

    accepted = []
    for domain in pc.unique(domains).to_pylist():
        try:
            validate_email(f"a@{domain}", check_deliverability=False)
        except EmailNotValidError:
            continue
        accepted.append(domain)
    return pa.array(accepted, type=pa.string())


def _email_via_library(value: str) -> str | None:
    """Normalized, lower-cased address per email-validator, or None when invalid."""
    from email_validator import EmailNotValidError, validate_email

    try:
        return validate_email(value, check_deliverability=False).normalized.lower()
    except EmailNotValidError:
        return None


class _ContactLong(NamedTuple):
    """Distinct (row, value) pairs of several contact columns, ordered by row then slot."""

    rows: np.ndarray
    values: pa.Array
    first_of_row: np.ndarray
    n: int


def _contacts_long(slots: Sequence[Any]) -> _ContactLong:
    """Stack contact columns into distinct (row, value) pairs, each at its best (lowest) slot."""
    arrays = [to_arrow(slot).cast(pa.string()) for slot in slots]
    n = len(arrays[0]) if arrays else 0
    values = pa.concat_arrays(arrays) if arrays else pa.array([], pa.string())
    present = _mask(pc.is_valid(values))
    table = pa.table({
        "row": np.tile(np.arange(n), len(arrays))[present],
        "slot": np.repeat(np.arange(len(arrays)), n)[present],
        "value": values.filter(pa.array(present)),
    })
    distinct = table.group_by(["row", "value"]).aggregate([("slot", "min")])
    distinct = distinct.sort_by([("row", "ascending"), ("slot_min", "ascending")])
    rows = np.asarray(distinct.column("row"), dtype=np.int64)
    first = np.ones(rows.size, dtype=bool)
    first[1:] = rows[1:] != rows[:-1]
    return _ContactLong(rows, distinct.column("value").combine_chunks(), first, n)


def collect_contacts(slots: Sequence[Any]) -> tuple[pd.Series, pd.Series]:
    """First non-null value per row and the list of its other distinct values (NA if none).

    `slots` are normalized contact columns in priority order (Phone 1, Phone 2, ...).
    """
    long = _contacts_long(slots)
    primary = np.full(long.n, -1, dtype=np.int64)
    primary[long.rows[long.first_of_row]] = np.flatnonzero(long.first_of_row)
    primary_values = pc.take(long.values, pa.array(primary, mask=primary < 0))
    rest = ~long.first_of_row
    others = _lists_from(long.rows[rest], long.values.filter(pa.array(rest)), long.n)
    return to_series(primary_values), to_series(others)


def distinct_values(slots: Sequence[Any]) -> pd.Series:
    """Per row, the list of distinct non-null values across `slots` in slot order (NA if none)."""
    long = _contacts_long(slots)
    return to_series(_lists_from(long.rows, long.values, long.n))


# --- addresses ----------------------------------------------------------------------------------
# USPS Publication 28, appendix C1: standard suffix abbreviation, then the spellings it replaces.
_C1_SUFFIXES: Final = """
ALY ALLEE ALLEY ALLY | ANX ANEX ANNEX ANNX | ARC ARCADE | AVE AV AVEN AVENU AVENUE AVN AVNUE |
BYU BAYOO BAYOU | BCH BEACH | BND BEND | BLF BLUF BLUFF | BLFS BLUFFS | BTM BOT BOTTM BOTTOM |
BLVD BOUL BOULEVARD BOULV | BR BRNCH BRANCH | BRG BRDGE BRIDGE | BRK BROOK | BRKS BROOKS |
BG BURG | BGS BURGS | BYP BYPA BYPAS BYPASS BYPS | CP CAMP CMP | CYN CANYN CANYON CNYN |
CPE CAPE | CSWY CAUSEWAY CAUSWA | CTR CEN CENT CENTER CENTR CENTRE CNTER CNTR | CTRS CENTERS |
CIR CIRC CIRCL CIRCLE CRCL CRCLE | CIRS CIRCLES | CLF CLIFF | CLFS CLIFFS | CLB CLUB |
CMN COMMON | CMNS COMMONS | COR CORNER | CORS CORNERS | CRSE COURSE | CT COURT | CTS COURTS |
CV COVE | CVS COVES | CRK CREEK | CRES CRESCENT CRSENT CRSNT | CRST CREST |
XING CROSSING CRSSNG | XRD CROSSROAD | XRDS CROSSROADS | CURV CURVE | DL DALE | DM DAM |
DV DIV DIVIDE DVD | DR DRIV DRIVE DRV | DRS DRIVES | EST ESTATE | ESTS ESTATES |
EXPY EXP EXPR EXPRESS EXPRESSWAY EXPW | EXT EXTENSION EXTN EXTNSN | EXTS EXTENSIONS |
FLS FALLS | FRY FERRY FRRY | FLD FIELD | FLDS FIELDS | FLT FLAT | FLTS FLATS | FRD FORD |
FRDS FORDS | FRST FOREST FORESTS | FRG FORG FORGE | FRGS FORGES | FRK FORK | FRKS FORKS |
FT FORT FRT | FWY FREEWAY FREEWY FRWAY FRWY | GDN GARDEN GARDN GRDEN GRDN | GDNS GARDENS GRDNS |
GTWY GATEWAY GATEWY GATWAY GTWAY | GLN GLEN | GLNS GLENS | GRN GREEN | GRNS GREENS |
GRV GROV GROVE | GRVS GROVES | HBR HARB HARBOR HARBR HRBOR | HBRS HARBORS | HVN HAVEN |
HTS HT HEIGHTS | HWY HIGHWAY HIGHWY HIWAY HIWY HWAY | HL HILL | HLS HILLS |
HOLW HLLW HOLLOW HOLLOWS HOLWS | INLT INLET | IS ISLAND ISLND | ISS ISLANDS ISLNDS | ISLE ISLES |
JCT JCTION JCTN JUNCTION JUNCTN JUNCTON | JCTS JCTNS JUNCTIONS | KY KEY | KYS KEYS |
KNL KNOL KNOLL | KNLS KNOLLS | LK LAKE | LKS LAKES | LNDG LANDING LNDNG | LN LANE |
LGT LIGHT | LGTS LIGHTS | LF LOAF | LCK LOCK | LCKS LOCKS | LDG LDGE LODG LODGE | LOOP LOOPS |
MNR MANOR | MNRS MANORS | MDW MEADOW | MDWS MDW MEADOWS MEDOWS | ML MILL | MLS MILLS |
MSN MISSN MSSN MISSION | MTWY MOTORWAY | MT MNT MOUNT | MTN MNTAIN MNTN MOUNTAIN MOUNTIN MTIN |
MTNS MOUNTAINS | NCK NECK | ORCH ORCHARD ORCHRD | OVAL OVL | OPAS OVERPASS | PARK PRK PARKS |
PKWY PARKWAY PARKWY PKWAY PKY PARKWAYS PKWYS | PSGE PASSAGE | PATH PATHS | PIKE PIKES |
PNE PINE | PNES PINES | PL PLACE | PLN PLAIN | PLNS PLAINS | PLZ PLAZA PLZA | PT POINT |
PTS POINTS | PRT PORT | PRTS PORTS | PR PRAIRIE PRR | RADL RAD RADIAL RADIEL | RNCH RANCH RANCHES RNCHS |
RPD RAPID | RPDS RAPIDS | RST REST | RDG RDGE RIDGE | RDGS RIDGES | RIV RIVER RVR RIVR |
RD ROAD | RDS ROADS | RTE ROUTE | SHL SHOAL | SHLS SHOALS | SHR SHOAR SHORE | SHRS SHOARS SHORES |
SKWY SKYWAY | SPG SPNG SPRING SPRNG | SPGS SPNGS SPRINGS SPRNGS | SPUR SPURS |
SQ SQR SQRE SQU SQUARE | SQS SQRS SQUARES | STA STATION STATN STN |
STRA STRAV STRAVEN STRAVENUE STRAVN STRVN STRVNUE | STRM STREAM STREME |
ST STREET STRT STR | STS STREETS | SMT SUMIT SUMITT SUMMIT | TER TERR TERRACE | TRWY THROUGHWAY |
TRCE TRACE TRACES | TRAK TRACK TRACKS TRK TRKS | TRFY TRAFFICWAY | TRL TRAIL TRAILS TRLS |
TRLR TRAILER TRLRS | TUNL TUNEL TUNLS TUNNEL TUNNELS TUNNL | TPKE TRNPK TURNPIKE TURNPK |
UPAS UNDERPASS | UN UNION | UNS UNIONS | VLY VALLEY VALLY VLLY | VLYS VALLEYS |
VIA VDCT VIADCT VIADUCT | VW VIEW | VWS VIEWS | VLG VILL VILLAG VILLAGE VILLG VILLIAGE |
VLGS VILLAGES | VL VILLE | VIS VIST VISTA VST VSTA | WALK WALKS | WAY WY | WL WELL | WLS WELLS
"""
_DIRECTIONAL_WORDS: Final = {
    "NORTH": "N", "SOUTH": "S", "EAST": "E", "WEST": "W", "NORTHEAST": "NE", "NORTHWEST": "NW",
    "SOUTHEAST": "SE", "SOUTHWEST": "SW",
}
# Unit designators (Pub 28 appendix C2) that take an identifier, and those that stand alone.
UNIT_DESIGNATORS: Final = (
    "APT", "APARTMENT", "UNIT", "STE", "SUITE", "RM", "ROOM", "SPC", "SPACE", "LOT", "TRLR",
    "FL", "FLOOR", "BLDG", "BUILDING", "DEPT", "HNGR", "HANGAR", "SLIP", "PIER",
)
STANDALONE_UNITS: Final[dict[str, str]] = {
    "BSMT": "BSMT", "BASEMENT": "BSMT", "FRNT": "FRNT", "FRONT": "FRNT", "LBBY": "LBBY",
    "LOBBY": "LBBY", "LOWR": "LOWR", "LOWER": "LOWR", "OFC": "OFC", "OFFICE": "OFC",
    "PH": "PH", "PENTHOUSE": "PH", "REAR": "REAR", "SIDE": "SIDE", "UPPR": "UPPR", "UPPER": "UPPR",
}


def _suffix_table() -> dict[str, str]:
    """Spelling -> USPS standard abbreviation, from the C1 text above."""
    table: dict[str, str] = {}
    for group in _C1_SUFFIXES.split("|"):
        words = group.split()
        for word in words:
            table.setdefault(word, words[0])
    return table


STREET_TOKEN_MAP: Final[dict[str, str]] = {**_suffix_table(), **_DIRECTIONAL_WORDS, "SAINT": "ST"}
_TOKEN_KEYS: Final = pa.array(list(STREET_TOKEN_MAP))
_TOKEN_VALUES: Final = pa.array(list(STREET_TOKEN_MAP.values()))
_STANDALONE_KEYS: Final = pa.array(list(STANDALONE_UNITS))
_STANDALONE_VALUES: Final = pa.array(list(STANDALONE_UNITS.values()))

_DESIGNATOR_ALT: Final = "|".join(UNIT_DESIGNATORS)
_STANDALONE_ALT: Final = "|".join(STANDALONE_UNITS)
_IDENT: Final = r"[\p{L}\p{N}]*\p{N}[\p{L}\p{N}]*(?: [\p{L}\p{N}])?|\p{L}{1,2}"
# House number + at least one word, then a designator (or #) and an identifier, at the end.
_LINE_UNIT_RE: Final = rf"^(?P<street>\S+ .+) (?:(?:{_DESIGNATOR_ALT})(?: #)?|#) (?P<unit>{_IDENT})$"
_LINE_STANDALONE_RE: Final = rf"^(?P<street>\S+ \S+ .+) (?P<unit>{_STANDALONE_ALT})$"
_GLUED_RE: Final = rf"\b({_DESIGNATOR_ALT})(\d)"
# A bare number after a street suffix is a unit ("5 MIDDLESEX AVE 25"), except after road types
# that are followed by a route number ("1200 US HWY 1").
_ROUTE_SUFFIXES: Final = frozenset({"HWY", "RTE", "FWY", "EXPY", "TPKE", "PIKE", "BYP", "SKWY", "MTWY", "TRWY", "RD"})
_UNIT_AFTER_SUFFIX_ALT: Final = "|".join(
    sorted((word for word, abbr in _suffix_table().items() if abbr not in _ROUTE_SUFFIXES), key=len, reverse=True)
)
_DIRECTIONAL_ALT: Final = "|".join([*_DIRECTIONAL_WORDS, *_DIRECTIONAL_WORDS.values()])
_BARE_UNIT_RE: Final = (
    rf"^(?P<street>\S+ .+ (?:{_UNIT_AFTER_SUFFIX_ALT})(?: (?:{_DIRECTIONAL_ALT}))?) (?P<unit>\d+[A-Z]?)$"
)
# Lines with anything but upper-case ASCII letters, digits and single inner spaces.
_MESSY_RE: Final = rf"[^A-Z0-9 ]|  |^ | $|\b(?:{_DESIGNATOR_ALT})\d"


def _fold(array: pa.Array) -> pa.Array:
    """Upper-case, accents removed, '.' and apostrophes deleted, other punctuation -> spaces.

    Most address lines are already plain ("123 MAIN ST" once upper-cased); only the others pay
    for the regex chain.
    """
    upper = pc.utf8_upper(array)
    return _blank_to_null(_only_where(upper, pc.match_substring_regex(upper, _MESSY_RE), _fold_messy))


def _fold_messy(upper: pa.Array) -> pa.Array:
    """The full folding chain of `_fold`."""
    text = pc.utf8_normalize(upper, "NFKD")
    text = pc.utf8_upper(pc.replace_substring_regex(text, r"\p{Mn}", ""))
    text = pc.replace_substring_regex(text, r"[.'’`]", "")
    text = pc.replace_substring(text, "#", " # ")
    text = pc.replace_substring_regex(text, r"[^\p{L}\p{N}#]+", " ")
    text = pc.replace_substring_regex(text, _GLUED_RE, r"\1 \2")
    return pc.utf8_trim(text, " ")


def _map_tokens(array: pa.Array) -> pa.Array:
    """Replace every space-separated token found in STREET_TOKEN_MAP by its abbreviation."""
    tokens = pc.split_pattern(array, " ")
    flat = tokens.values
    position = pc.index_in(flat, value_set=_TOKEN_KEYS)
    mapped = pc.if_else(pc.is_valid(position), pc.take(_TOKEN_VALUES, position), flat)
    rebuilt = pa.ListArray.from_arrays(tokens.offsets, mapped, mask=pc.is_null(tokens))
    return pc.binary_join(rebuilt, " ")


def _canonical_unit(folded: pa.Array) -> pa.Array:
    """A folded unit text -> identifier only (``APT 04 B`` -> ``4B``, ``REAR`` stays ``REAR``)."""
    text = pc.replace_substring_regex(folded, rf"^(?:(?:{_DESIGNATOR_ALT})\b ?)*(?:# ?)*", "")
    standalone = pc.index_in(text, value_set=_STANDALONE_KEYS)
    text = pc.if_else(pc.is_valid(standalone), pc.take(_STANDALONE_VALUES, standalone), text)
    text = pc.replace_substring(text, " ", "")
    text = pc.replace_substring_regex(text, r"^0+(\d)", r"\1")
    return _blank_to_null(text)


@per_distinct
def _unit(array: pa.Array) -> pa.Array:
    return _canonical_unit(_fold(array))


def normalize_unit(values: Any) -> pd.Series:
    """Canonical unit identifier from a unit column: ``Apt 4``, ``#4``, ``Unit 4``, ``APT. 4`` -> ``4``."""
    return to_series(_unit(to_arrow(values)))


class StreetParts(NamedTuple):
    """A normalized street line and the canonical unit found at its end (NA if none)."""

    street: pd.Series
    unit: pd.Series


class AddressLine(NamedTuple):
    """An address cell read as parts (Arrow arrays): the normalized street line, the unit cut
    from it, and the locality (city, state, ZIP) when the cell carried a whole address."""

    street: pa.Array
    unit: pa.Array
    city: pa.Array
    state: pa.Array
    zip: pa.Array


def normalize_street(values: Any) -> StreetParts:
    """Normalize address lines for matching (see "Address hash" in the module docstring)."""
    line = parse_address_line(to_arrow(values))
    return StreetParts(to_series(line.street), to_series(line.unit))


def parse_address_line(raw: pa.Array) -> AddressLine:
    """Arrow core of `normalize_street`: fast path for every row, usaddress for the odd ones."""
    folded = _fold(raw)
    street, unit = _cut_unit(folded)
    odd = _needs_usaddress(folded, street)
    nulls = pa.nulls(len(raw), pa.string())
    city = state = zip5 = nulls
    if odd.any():
        street, unit, city, state, zip5 = _reparse_with_usaddress(raw, odd, street, unit)
    return AddressLine(_map_tokens(street), unit, city, state, zip5)


def _cut_unit(folded: pa.Array) -> tuple[pa.Array, pa.Array]:
    """Split a trailing unit designator + identifier (or a standalone designator) off the line."""
    with_id = pc.extract_regex(folded, _LINE_UNIT_RE)
    street = pc.if_else(pc.is_valid(with_id), pc.struct_field(with_id, [0]), folded)
    unit = pc.if_else(pc.is_valid(with_id), pc.struct_field(with_id, [1]), _NULL_TEXT)
    # Standalone designators ("... REAR") are rare: extract only where the line ends in one.
    ends_standalone = pc.and_(pc.is_null(unit), pc.match_substring_regex(folded, rf" (?:{_STANDALONE_ALT})$"))
    rows = np.flatnonzero(_mask(ends_standalone))
    if rows.size:
        found = pc.extract_regex(folded.take(pa.array(rows)), _LINE_STANDALONE_RE)
        hit = _mask(pc.is_valid(found))
        street = _scatter(street, rows[hit], pc.struct_field(found, [0]).filter(pa.array(hit)))
        unit = _scatter(unit, rows[hit], pc.struct_field(found, [1]).filter(pa.array(hit)))
    ends_number = pc.and_(pc.is_null(unit), pc.match_substring_regex(folded, r" \d+[A-Z]?$"))
    rows = np.flatnonzero(_mask(ends_number))
    if rows.size:
        found = pc.extract_regex(folded.take(pa.array(rows)), _BARE_UNIT_RE)
        hit = _mask(pc.is_valid(found))
        street = _scatter(street, rows[hit], pc.struct_field(found, [0]).filter(pa.array(hit)))
        unit = _scatter(unit, rows[hit], pc.struct_field(found, [1]).filter(pa.array(hit)))
    return street, _canonical_unit(unit)


def _needs_usaddress(folded: pa.Array, street: pa.Array) -> np.ndarray:
    """Rows the fast path should not trust: a whole "street city ST 06418" line, or no house number."""
    inline_zip = pc.match_substring_regex(folded, r" [A-Z]{2} \d{3,5}(?: \d{4})?$")
    numbered = pc.match_substring_regex(street, r"^\p{N}")
    return _mask(pc.is_valid(street)) & (~_mask(numbered) | _mask(inline_zip))


_STREET_LABELS: Final = (
    "AddressNumberPrefix", "AddressNumber", "AddressNumberSuffix", "StreetNamePreModifier",
    "StreetNamePreDirectional", "StreetNamePreType", "StreetName", "StreetNamePostType",
    "StreetNamePostDirectional", "USPSBoxType", "USPSBoxID", "USPSBoxGroupType", "USPSBoxGroupID",
    "BuildingName", "CornerOf", "IntersectionSeparator", "SecondStreetName", "SecondStreetNamePostType",
)
_UNIT_LABELS: Final = ("OccupancyType", "OccupancyIdentifier", "SubaddressType", "SubaddressIdentifier")


def _usaddress_line(value: str) -> tuple[str, str, str | None, str | None, str | None] | None:
    """(street, unit, city, state, ZIP) labelled by usaddress, or None when it cannot label the line."""
    import usaddress

    try:
        tagged, _kind = usaddress.tag(value.replace("\n", " ").replace("\r", " "))
    except Exception:  # RepeatedLabelError and friends: the caller keeps the simple string
        return None
    street = " ".join(tagged[label] for label in _STREET_LABELS if label in tagged)
    unit = " ".join(tagged[label] for label in _UNIT_LABELS if label in tagged)
    if not street:
        return None
    return street, unit, tagged.get("PlaceName"), tagged.get("StateName"), tagged.get("ZipCode")


def _reparse_with_usaddress(raw: pa.Array, rows: np.ndarray, street: pa.Array, unit: pa.Array) -> tuple[pa.Array, ...]:
    """Street/unit at `rows` replaced with usaddress' reading (once per distinct raw line), plus
    the city / state / ZIP the line carried (NULL elsewhere)."""
    positions = np.flatnonzero(rows)
    encoded = pc.dictionary_encode(raw.take(pa.array(positions)))
    parsed = [_usaddress_line(value) for value in encoded.dictionary.to_pylist()]

    def part(i: int) -> pa.Array:
        return pc.take(pa.array([p[i] if p else None for p in parsed], type=pa.string()), encoded.indices)

    lib_street, lib_unit = _fold(part(0)), _canonical_unit(_fold(part(1)))
    labelled = _mask(pc.is_valid(lib_street))
    keep = pa.array(labelled)
    at = positions[labelled]
    nulls = pa.nulls(len(raw), pa.string())
    # Keep the fast-path result wherever usaddress could not label the line.
    return (_scatter(street, at, lib_street.filter(keep)), _scatter(unit, at, lib_unit.filter(keep)),
            *(_scatter(nulls, at, _blank_to_null(part(i)).filter(keep)) for i in (2, 3, 4)))


@per_distinct
def _city(array: pa.Array) -> pa.Array:
    return _map_tokens(_fold(array))


def normalize_city(values: Any) -> pd.Series:
    """City for the hash fallback: folded like street lines, tokens abbreviated."""
    return to_series(_city(to_arrow(values)))


# A street line without its USPS street type ("7946 S ASHLAND AVE" -> "7946 S ASHLAND"): the
# house number (and pre-directional) must be followed by at least one name word.
_DIRECTIONAL_ABBR_ALT: Final = "|".join(sorted(set(_DIRECTIONAL_WORDS.values()), key=len, reverse=True))
_STREET_TYPE_ALT: Final = "|".join(sorted(set(_suffix_table().values()), key=len, reverse=True))
_TYPED_LINE_RE: Final = (
    rf"^(\S+ (?:(?:{_DIRECTIONAL_ABBR_ALT}) )?\S.*?) (?:{_STREET_TYPE_ALT})((?: (?:{_DIRECTIONAL_ABBR_ALT}))?)$"
)


def _without_street_type(street: pa.Array) -> pa.Array:
    return pc.replace_substring_regex(street, _TYPED_LINE_RE, r"\1\2")


class AddressIdentity(NamedTuple):
    """What identifies a property's address (Arrow arrays, one value per row).

    ``std``: the standardized street line and unit, ``street|unit``; ``bare``: the same without
    the street type (matched only when one side lacks it and the name is unambiguous);
    ``city``: the normalized city; ``hash``: `addr_hash`, the SHA-256 of ``std|zip5`` when the
    row has a ZIP, else of ``std|city|state``.
    """

    std: pa.Array
    bare: pa.Array
    city: pa.Array
    hash: pa.Array


def address_identity(line: AddressLine, unit: pa.Array, city: pa.Array, state: pa.Array,
                     zip5: pa.Array) -> AddressIdentity:
    """The identity columns of each row; `state` and `zip5` must already be normalized."""
    unit_text = pc.fill_null(pc.coalesce(_unit(unit), line.unit), "")
    std = pc.binary_join_element_wise(line.street, unit_text, "|")
    bare = pc.binary_join_element_wise(_without_street_type(line.street), unit_text, "|")
    city_norm = _city(city)
    return AddressIdentity(std, bare, city_norm, _sha256_hex(_identity_key(std, city_norm, state, zip5)))


def _identity_key(std: pa.Array, city: pa.Array, state: pa.Array, zip5: pa.Array) -> pa.Array:
    """``std|zip5`` with a valid ZIP, else ``std|city|state`` with a valid state, else NULL."""
    zip_ok = pc.fill_null(pc.match_substring_regex(zip5, r"^\d{5}$"), False)
    state_ok = pc.fill_null(pc.is_in(state, value_set=STATE_CODES_ARRAY), False)
    by_zip = pc.if_else(zip_ok, pc.binary_join_element_wise(std, zip5, "|"), _NULL_TEXT)
    by_city = pc.if_else(state_ok, pc.binary_join_element_wise(std, city, state, "|"), _NULL_TEXT)
    return pc.coalesce(by_zip, by_city)


def _address_keys(address: pa.Array, unit: pa.Array, city: pa.Array, state: pa.Array, zip5: pa.Array) -> pa.Array:
    ident = address_identity(parse_address_line(address), unit, city, state, zip5)
    return _identity_key(ident.std, ident.city, state, zip5)


def address_keys(address: Any, unit: Any, city: Any, state: Any, zip5: Any) -> pd.Series:
    """The text that `addr_hash` hashes: ``street|unit|zip5`` or ``street|unit|city|state``.

    `state` and `zip5` must already be normalized (`normalize_state`, `normalize_zip`); rows
    without a usable ZIP or city + state, or without an address, get NA.
    """
    return to_series(_address_keys(*(to_arrow(v) for v in (address, unit, city, state, zip5))))


def _sha256_hex(keys: pa.Array) -> pa.Array:
    """Hex SHA-256 per key: one C call per row, then one bulk hex encoding into an Arrow buffer."""
    n = len(keys)
    sha256 = hashlib.sha256
    blank = bytes(32)
    digests = b"".join([blank if key is None else sha256(key).digest() for key in keys.cast(pa.binary()).to_pylist()])
    offsets = np.arange(0, 64 * (n + 1), 64, dtype=np.int32)
    validity = keys.buffers()[0] if keys.offset == 0 else None
    hexed = pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(digests.hex().encode("ascii")), validity)
    if keys.offset and keys.null_count:
        hexed = pc.if_else(pc.is_valid(keys), hexed, _NULL_TEXT)
    return hexed


def sha256_hex(keys: Any) -> pd.Series:
    """Lower-case hex SHA-256 of each UTF-8 key (NA stays NA)."""
    return to_series(_sha256_hex(to_arrow(keys)))


def address_hash(address: Any, unit: Any, city: Any, state: Any, zip5: Any) -> pd.Series:
    """`addr_hash` per row (see the module docstring for the exact definition)."""
    keys = _address_keys(*(to_arrow(v) for v in (address, unit, city, state, zip5)))
    return to_series(_sha256_hex(keys))
