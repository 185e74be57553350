"""Phones (E.164) and e-mail addresses, and the per-row collection of contact slots.

The normalization policy is described in :mod:`equity_assets.ingest.normalize`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any, Final, NamedTuple

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
    _scatter,
    to_arrow,
    to_series,
    _trimmed,
)
from equity_assets.ingest.numbers_dates import _lists_from

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
