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
    * ``zip5``: the repaired ZIP (see `repair_zip`). ``city``: cleaned like ``street``
      (tokens abbreviated too, so SAINT LOUIS = ST. LOUIS). ``state``: 2-letter code.

Where things are
    The normalizers live by subject: `text` (free text, states, ZIPs, counties, APNs),
    `numbers_dates` (flags, integers, money, percents, dates, lists, MAK), `contacts` (phones,
    e-mail), `address` (street, unit, city, the locality of a one-cell address) and
    `address_identity` (identity columns, address hash), on the Arrow plumbing of `columnar`
    (all in ``equity_assets.ingest``). This module is the one import for callers.
"""

from __future__ import annotations

from equity_assets.ingest.columnar import (
    ArrowFn,
    Parsed,
    per_distinct,
    to_arrow,
    to_series,
)
from equity_assets.ingest.text import (
    clean_text,
    collapse_spaces,
    normalize_apn,
    normalize_county,
    normalize_mailing_zip,
    normalize_state,
    normalize_zip,
    repair_zip,
    STATE_CODES,
    STATE_CODES_ARRAY,
    STATE_NAMES,
    ZERO_LED_ZIP_PREFIXES,
    zip_repairable,
)
from equity_assets.ingest.numbers_dates import (
    DATE_RANGE,
    parse_bool,
    parse_date,
    parse_flag,
    parse_int,
    parse_mak,
    parse_money,
    parse_number,
    parse_percent,
    split_list,
)
from equity_assets.ingest.contacts import (
    collect_contacts,
    distinct_values,
    normalize_email,
    normalize_phone,
)
from equity_assets.ingest.address import (
    AddressLine,
    normalize_city,
    normalize_street,
    normalize_unit,
    parse_address_line,
    STANDALONE_UNITS,
    STREET_TOKEN_MAP,
    StreetParts,
    UNIT_WORDS,
)
from equity_assets.ingest.address_identity import (
    address_hash,
    address_identity,
    address_keys,
    AddressIdentity,
    sha256_hex,
)

__all__ = [
    "address_hash",
    "address_identity",
    "address_keys",
    "AddressIdentity",
    "AddressLine",
    "ArrowFn",
    "clean_text",
    "collapse_spaces",
    "collect_contacts",
    "DATE_RANGE",
    "distinct_values",
    "normalize_apn",
    "normalize_city",
    "normalize_county",
    "normalize_email",
    "normalize_mailing_zip",
    "normalize_phone",
    "normalize_state",
    "normalize_street",
    "normalize_unit",
    "normalize_zip",
    "parse_address_line",
    "parse_bool",
    "parse_date",
    "parse_flag",
    "parse_int",
    "parse_mak",
    "parse_money",
    "parse_number",
    "parse_percent",
    "Parsed",
    "per_distinct",
    "repair_zip",
    "sha256_hex",
    "split_list",
    "STANDALONE_UNITS",
    "STATE_CODES",
    "STATE_CODES_ARRAY",
    "STATE_NAMES",
    "STREET_TOKEN_MAP",
    "StreetParts",
    "to_arrow",
    "to_series",
    "UNIT_WORDS",
    "ZERO_LED_ZIP_PREFIXES",
    "zip_repairable",
]
