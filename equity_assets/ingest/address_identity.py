"""Address identity: the columns that decide which property a row is (`addr_std`, `addr_bare`,
`addr_city`) and the address hash (`addr_hash`).

The normalization policy is described in :mod:`equity_assets.ingest.normalize`.
"""

from __future__ import annotations

import hashlib
from typing import Any, Final, NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from equity_assets.ingest.address import (
    _city,
    _DIRECTIONAL_WORDS,
    _suffix_table,
    _unit,
    AddressLine,
    parse_address_line,
)
from equity_assets.ingest.columnar import _NULL_TEXT, to_arrow, to_series
from equity_assets.ingest.text import STATE_CODES_ARRAY

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
