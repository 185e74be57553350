"""Typed columns: flags, integers, money, percents, dates, lists and the MAK.

The normalization policy is described in :mod:`equity_assets.ingest.normalize`.
"""

from __future__ import annotations

import re
from typing import Any, Final

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from equity_assets.ingest.columnar import (
    _NULL_TEXT,
    Parsed,
    _as_parsed,
    _blank_to_null,
    _invalid,
    _mask,
    per_distinct,
    to_arrow,
    to_series,
    _trimmed,
)

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
