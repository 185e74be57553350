"""The `leads_staging` column contract and the CSV header vocabulary that feeds it.

`STAGING_COLUMNS` is the single ordered definition of the staging table: the SQL migration,
the parsed DataFrame and the COPY column list all follow it. `resolve_headers` maps the header
row of an uploaded CSV (a PropStream export or any CSV with the same core columns) onto those
columns. Header matching ignores case, spacing and punctuation: ``"Est. Loan-to-Value"``,
``"EST LOAN TO VALUE"`` and ``"est_loan_to_value"`` are the same header.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa


class StagingColumn(NamedTuple):
    """One column of `leads_staging`: its name, PostgreSQL type and how a chunk fills it.

    `parser` names the normalizer `chunk.py` applies to the file's cell (``text``, ``spaced``,
    ``county``, ``state``, ``zip``, ``mailing_zip``, ``apn``, ``list``, ``bool``, ``int``,
    ``number``, ``money``, ``percent``, ``date``, ``mak``), or where the value comes from instead:
    ``contact`` (phone and e-mail slots), ``derived`` (computed from other columns), ``row``.
    """

    name: str
    pg_type: str
    parser: str


STAGING_COLUMNS: Final[tuple[StagingColumn, ...]] = tuple(
    StagingColumn(name, pg_type, parser)
    for name, pg_type, parser in (
        ("row_number", "integer", "row"),
        ("property_address", "text", "spaced"),
        ("property_unit", "text", "text"),
        ("property_city", "text", "spaced"),
        ("property_state", "text", "state"),
        ("property_zip", "text", "zip"),
        ("county", "text", "county"),
        ("apn", "text", "apn"),
        ("owner_occupied", "boolean", "bool"),
        ("first_name", "text", "text"),
        ("last_name", "text", "text"),
        ("company_name", "text", "text"),
        ("owner2_first_name", "text", "text"),
        ("owner2_last_name", "text", "text"),
        ("mailing_care_of", "text", "text"),
        ("mailing_address", "text", "spaced"),
        ("mailing_unit", "text", "text"),
        ("mailing_city", "text", "spaced"),
        ("mailing_state", "text", "state"),
        ("mailing_zip", "text", "mailing_zip"),
        ("mailing_county", "text", "county"),
        ("do_not_mail", "boolean", "bool"),
        ("property_type", "text", "text"),
        ("bedrooms", "integer", "int"),
        ("bathrooms", "numeric", "number"),
        ("building_sqft", "integer", "int"),
        ("lot_size_sqft", "integer", "int"),
        ("year_built", "integer", "int"),
        ("assessed_value", "numeric", "money"),
        ("last_sale_date", "date", "date"),
        ("last_sale_amount", "numeric", "money"),
        ("open_loans", "integer", "int"),
        ("loan_balance", "numeric", "money"),
        ("estimated_value", "numeric", "money"),
        ("ltv", "numeric", "percent"),
        ("equity", "numeric", "money"),
        ("mls_status", "text", "text"),
        ("mls_date", "date", "date"),
        ("mls_amount", "numeric", "money"),
        ("lien_amount", "numeric", "money"),
        ("marketing_lists", "text[]", "list"),
        ("date_added_to_list", "date", "date"),
        ("method_of_add", "text", "text"),
        ("email", "text", "contact"),
        ("alt_emails", "text[]", "contact"),
        ("phone", "text", "contact"),
        ("alt_phones", "text[]", "contact"),
        ("dnc_phones", "text[]", "contact"),
        ("litigator", "boolean", "bool"),
        ("addr_std", "text", "derived"),
        ("addr_bare", "text", "derived"),
        ("addr_city", "text", "derived"),
        ("addr_hash", "text", "derived"),
        ("mak", "text", "mak"),
    )
)

STAGING_COLUMN_NAMES: Final[tuple[str, ...]] = tuple(c.name for c in STAGING_COLUMNS)
PG_TYPES: Final[dict[str, str]] = {c.name: c.pg_type for c in STAGING_COLUMNS}


def columns_of_type(pg_type: str) -> tuple[str, ...]:
    """Staging column names whose PostgreSQL type is `pg_type`, in table order."""
    return tuple(c.name for c in STAGING_COLUMNS if c.pg_type == pg_type)


TEXT_COLUMNS: Final = columns_of_type("text")
BOOLEAN_COLUMNS: Final = columns_of_type("boolean")
INTEGER_COLUMNS: Final = tuple(c for c in columns_of_type("integer") if c != "row_number")
NUMERIC_COLUMNS: Final = columns_of_type("numeric")
DATE_COLUMNS: Final = columns_of_type("date")
ARRAY_COLUMNS: Final = columns_of_type("text[]")

# pandas dtypes of the staging frame: nullable and Arrow-backed, so missing is NA (never "" or
# NaN-as-text) and the frame goes to COPY without converting every string to a Python object.
PANDAS_DTYPES: Final[dict[str, Any]] = {
    c.name: {
        "text": pd.StringDtype("pyarrow"),
        "text[]": pd.ArrowDtype(pa.list_(pa.string())),
        "integer": pd.Int64Dtype(),
        "numeric": pd.Float64Dtype(),
        "boolean": pd.BooleanDtype(),
        "date": np.dtype("datetime64[ns]"),
    }[c.pg_type]
    for c in STAGING_COLUMNS
}
PANDAS_DTYPES["row_number"] = np.dtype("int64")


def staging_table_ddl(table: str = "leads_staging") -> str:
    """`CREATE UNLOGGED TABLE` text matching `STAGING_COLUMNS` (a convenience for migrations/tests)."""
    body = ",\n  ".join(f"{c.name} {c.pg_type}" for c in STAGING_COLUMNS)
    return f"CREATE UNLOGGED TABLE {table} (\n  {body}\n);"


# The 42 headers of a PropStream export, in file order (docs/vendors.md).
PROPSTREAM_HEADERS: Final[tuple[str, ...]] = (
    "Address", "Unit #", "City", "State", "Zip", "County", "APN", "Owner Occupied",
    "Owner 1 First Name", "Owner 1 Last Name", "Company Name", "Owner 2 First Name",
    "Owner 2 Last Name", "Mailing Care of Name", "Mailing Address", "Mailing Unit #",
    "Mailing City", "Mailing State", "Mailing Zip", "Mailing County", "Do Not Mail",
    "Property Type", "Bedrooms", "Total Bathrooms", "Building Sqft", "Lot Size Sqft",
    "Effective Year Built", "Total Assessed Value", "Last Sale Recording Date",
    "Last Sale Amount", "Total Open Loans", "Est. Remaining balance of Open Loans",
    "Est. Value", "Est. Loan-to-Value", "Est. Equity", "MLS Status", "MLS Date", "MLS Amount",
    "Lien Amount", "Marketing Lists", "Date Added to List", "Method of Add",
)


def header_key(header: str) -> str:
    """Canonical form of a header for matching: NFKC, BOM dropped, lower case, only [a-z0-9]."""
    text = unicodedata.normalize("NFKC", header).replace("\ufeff", "").lower()
    return re.sub(r"[^a-z0-9]", "", text)


# Staging column -> header spellings (any case / spacing / punctuation). PropStream's own
# header comes first; the rest are common synonyms from other list vendors and hand-made CSVs.
_SYNONYMS: Final[dict[str, tuple[str, ...]]] = {
    "property_address": ("Address", "Property Address", "Street", "Street Address", "Address1",
                         "Address Line 1", "Site Address", "Situs Address", "Property Street"),
    "property_unit": ("Unit #", "Unit", "Unit Number", "Property Unit", "Property Unit #",
                      "Address2", "Address Line 2", "Apt", "Apartment"),
    "property_city": ("City", "Property City", "Site City", "Situs City"),
    "property_state": ("State", "Property State", "Site State", "Situs State"),
    "property_zip": ("Zip", "Zip Code", "Zipcode", "Postal Code", "Postcode", "Property Zip",
                     "Property Zip Code", "Zip5", "Site Zip", "Situs Zip"),
    "county": ("County", "Property County"),
    "apn": ("APN", "Parcel Number", "Parcel ID", "Parcel", "Assessor Parcel Number"),
    "owner_occupied": ("Owner Occupied",),
    "first_name": ("Owner 1 First Name", "First Name", "Owner First Name", "First", "Owner1 First Name"),
    "last_name": ("Owner 1 Last Name", "Last Name", "Owner Last Name", "Last", "Surname"),
    "company_name": ("Company Name", "Company", "Owner Company"),
    "owner2_first_name": ("Owner 2 First Name",),
    "owner2_last_name": ("Owner 2 Last Name",),
    "mailing_care_of": ("Mailing Care of Name", "Care Of", "Care of Name"),
    "mailing_address": ("Mailing Address", "Mailing Street", "Mail Address", "Mailing Address 1",
                        "Mailing Street Address"),
    "mailing_unit": ("Mailing Unit #", "Mailing Unit"),
    "mailing_city": ("Mailing City", "Mail City"),
    "mailing_state": ("Mailing State", "Mail State"),
    "mailing_zip": ("Mailing Zip", "Mailing Zip Code", "Mail Zip", "Mailing Zip5", "Mail Zip5", "Mailing Postal Code"),
    "mailing_county": ("Mailing County",),
    "do_not_mail": ("Do Not Mail",),
    "property_type": ("Property Type",),
    "bedrooms": ("Bedrooms", "Beds"),
    "bathrooms": ("Total Bathrooms", "Bathrooms", "Baths"),
    "building_sqft": ("Building Sqft", "Building Square Feet", "Living Sqft", "Sqft"),
    "lot_size_sqft": ("Lot Size Sqft", "Lot Sqft", "Lot Size"),
    "year_built": ("Effective Year Built", "Year Built"),
    "assessed_value": ("Total Assessed Value", "Assessed Value"),
    "last_sale_date": ("Last Sale Recording Date", "Last Sale Date"),
    "last_sale_amount": ("Last Sale Amount", "Last Sale Price"),
    "open_loans": ("Total Open Loans", "Open Loans"),
    "loan_balance": ("Est. Remaining balance of Open Loans", "Loan Balance", "Mortgage Balance"),
    "estimated_value": ("Est. Value", "Estimated Value"),
    "ltv": ("Est. Loan-to-Value", "LTV", "Loan to Value"),
    "equity": ("Est. Equity", "Equity", "Estimated Equity"),
    "mls_status": ("MLS Status",),
    "mls_date": ("MLS Date",),
    "mls_amount": ("MLS Amount",),
    "lien_amount": ("Lien Amount",),
    "marketing_lists": ("Marketing Lists", "Marketing List"),
    "date_added_to_list": ("Date Added to List",),
    "method_of_add": ("Method of Add",),
    "litigator": ("Litigator",),
    "mak": ("MAK", "Melissa Address Key", "MelissaAddressKey"),
    # one cell with the whole owner name: split into first/last (or company) when those are empty
    "owner_full_name": ("Owner Name", "Owner 1 Name", "Owner 1 Full Name", "Owner Full Name", "Full Name",
                        "Owner", "Name"),
}
# Fields a header may feed that are not staging columns themselves.
DERIVED_FIELDS: Final = frozenset({"owner_full_name"})

# Contact headers: "Phone", "Phone 1", "Phone Number 2", "Email", "Email Address 3", ...
_PHONE_RE: Final = re.compile(r"^(?:phone|phonenumber|primaryphone)(\d*)$")
# Other vendors name phone slots by line type ("Wireless 1", "Landline 2", "Cell Phone"); they
# come after the plain "Phone N" slots, wireless first.
_TYPED_PHONE_RE: Final = re.compile(r"^(wireless|mobile|cell|cellphone|mobilephone|landline|landlinephone)(\d*)$")
_PHONE_FAMILY_OFFSET: Final = {"wireless": 100, "mobile": 100, "cell": 100, "cellphone": 100,
                               "mobilephone": 100, "landline": 200, "landlinephone": 200}
_PHONE_DNC_RE: Final = re.compile(r"^phone(\d+)dnc$")
_EMAIL_RE: Final = re.compile(r"^(?:email|emailaddress|primaryemail)(\d*)$")

_KEY_TO_COLUMN: Final[dict[str, str]] = {
    header_key(spelling): column for column, spellings in _SYNONYMS.items() for spelling in spellings
}


@dataclass(frozen=True)
class HeaderMap:
    """How the columns of one uploaded file map onto staging fields.

    `fields` maps a staging column (or a contact slot) to the position of its source column.
    Contact slots are kept apart because several source columns feed one staging column:
    `phones` / `emails` are (slot number, position) in slot order, `phone_dnc` maps a slot number
    to the position of its "Phone N DNC" column.
    """

    headers: tuple[str, ...]
    fields: dict[str, int]
    phones: tuple[tuple[int, int], ...] = ()
    phone_dnc: dict[int, int] = field(default_factory=dict)
    emails: tuple[tuple[int, int], ...] = ()
    ignored: tuple[str, ...] = ()


class UploadFormatError(ValueError):
    """The upload as a whole cannot be read; nothing of it is staged."""


class MissingColumnsError(UploadFormatError):
    """The upload lacks a core column (address, and ZIP or city + state)."""


def _claim(taken: dict[str, int], name: str, position: int) -> bool:
    """Record `name` at `position` unless an earlier column already supplied it."""
    if name in taken:
        return False
    taken[name] = position
    return True


def resolve_headers(headers: list[str] | tuple[str, ...]) -> HeaderMap:
    """Map a header row onto staging fields; raise `MissingColumnsError` if core columns are absent.

    The first column that matches a field wins; later duplicates and unknown headers are listed
    in `HeaderMap.ignored` rather than failing the upload (vendors add columns freely).
    """
    fields: dict[str, int] = {}
    phones: dict[int, int] = {}
    phone_dnc: dict[int, int] = {}
    emails: dict[int, int] = {}
    ignored: list[str] = []
    for position, header in enumerate(headers):
        key = header_key(header)
        column = _KEY_TO_COLUMN.get(key)
        if column is not None:
            claimed = _claim(fields, column, position)
        elif match := _PHONE_RE.match(key):
            claimed = _claim_slot(phones, match.group(1), position)
        elif match := _TYPED_PHONE_RE.match(key):
            claimed = _claim_slot(phones, match.group(2), position, offset=_PHONE_FAMILY_OFFSET[match.group(1)])
        elif match := _PHONE_DNC_RE.match(key):
            claimed = _claim_slot(phone_dnc, match.group(1), position)
        elif match := _EMAIL_RE.match(key):
            claimed = _claim_slot(emails, match.group(1), position)
        else:
            # "Phone N Type" (Mobile/Landline) has no staging column; nor do vendor extras.
            claimed = False
        if not claimed:
            ignored.append(header)
    _require_core_columns(fields)
    return HeaderMap(
        headers=tuple(headers),
        fields=fields,
        phones=tuple(sorted(phones.items())),
        phone_dnc=phone_dnc,
        emails=tuple(sorted(emails.items())),
        ignored=tuple(ignored),
    )


def _claim_slot(slots: dict[int, int], number: str, position: int, offset: int = 0) -> bool:
    """Claim contact slot `number` ("" means slot 1: a bare "Phone" is the first phone)."""
    slot = offset + (int(number) if number else 1)
    if slot in slots:
        return False
    slots[slot] = position
    return True


def _require_core_columns(fields: dict[str, int]) -> None:
    """Fail unless the file has an address and either a ZIP or both city and state."""
    missing: list[str] = []
    if "property_address" not in fields:
        missing.append("property address (a header such as 'Address', 'Street' or 'Address1')")
    has_zip = "property_zip" in fields
    has_city_state = "property_city" in fields and "property_state" in fields
    if not (has_zip or has_city_state):
        absent = [name for name in ("property_city", "property_state") if name not in fields]
        missing.append(
            "ZIP ('Zip', 'Zip Code' or 'Postal Code') or else city and state"
            f" (missing: {', '.join(absent)})"
        )
    if missing:
        raise MissingColumnsError("upload is missing required column(s): " + "; ".join(missing))
