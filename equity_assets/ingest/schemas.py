"""Pandera schema of the staging frame and the split of a chunk into good rows and failures.

`StagingLeadsFrame` is the contract between parsing/normalization and the COPY into
`leads_staging`: exact columns in table order, Arrow-backed nullable dtypes, and the domain
rules a row must meet to be staged (US state code, 5-digit ZIP, plausible year, non-negative
money, LTV range, an address with a ZIP or a city and state). `split_valid_rows` validates with
``lazy=True`` so every failure of every row is collected in one pass, then removes failing rows.
Failures are returned per row with the column(s) and reason(s) for the dead-letter queue.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Annotated, Final

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow
from pandera.typing import Series

from equity_assets.ingest.columns import STAGING_COLUMN_NAMES
from equity_assets.ingest.normalize import STATE_CODES
from equity_assets.observe.validation import E164, EMAIL, MAK, ZIP5

Text = Annotated[pd.StringDtype, "pyarrow", pd.NA]
TextList = Annotated[pd.ArrowDtype, pyarrow.list_(pyarrow.string())]
Integer = pd.Int64Dtype
Number = pd.Float64Dtype
Flag = pd.BooleanDtype
Date = pd.Timestamp

_STATES: Final = sorted(STATE_CODES)
_LATEST_YEAR: Final = dt.date.today().year + 2
MAX_LTV_PERCENT: Final = 1000.0  # far underwater is possible; beyond 10x the value is junk

_money = {"ge": 0, "nullable": True}
_LOCALITY_ERROR: Final = "no ZIP and no city + state"


class StagingLeadsFrame(pa.DataFrameModel):
    """One parsed, normalized upload row per frame row, ready for `leads_staging`."""

    row_number: Series[np.int64] = pa.Field(ge=1, unique=True)
    property_address: Series[Text] = pa.Field(nullable=False)
    property_unit: Series[Text] = pa.Field(nullable=True)
    property_city: Series[Text] = pa.Field(nullable=True)
    property_state: Series[Text] = pa.Field(nullable=True, str_matches=r"^[A-Z]{2}$")
    property_zip: Series[Text] = pa.Field(nullable=True, str_matches=r"^\d{5}$")
    county: Series[Text] = pa.Field(nullable=True)
    apn: Series[Text] = pa.Field(nullable=True)
    owner_occupied: Series[Flag] = pa.Field(nullable=True)
    first_name: Series[Text] = pa.Field(nullable=True)
    last_name: Series[Text] = pa.Field(nullable=True)
    company_name: Series[Text] = pa.Field(nullable=True)
    owner2_first_name: Series[Text] = pa.Field(nullable=True)
    owner2_last_name: Series[Text] = pa.Field(nullable=True)
    mailing_care_of: Series[Text] = pa.Field(nullable=True)
    mailing_address: Series[Text] = pa.Field(nullable=True)
    mailing_unit: Series[Text] = pa.Field(nullable=True)
    mailing_city: Series[Text] = pa.Field(nullable=True)
    mailing_state: Series[Text] = pa.Field(nullable=True)
    mailing_zip: Series[Text] = pa.Field(nullable=True)
    mailing_county: Series[Text] = pa.Field(nullable=True)
    do_not_mail: Series[Flag] = pa.Field(nullable=True)
    property_type: Series[Text] = pa.Field(nullable=True)
    bedrooms: Series[Integer] = pa.Field(nullable=True, in_range={"min_value": 0, "max_value": 100})
    bathrooms: Series[Number] = pa.Field(nullable=True, in_range={"min_value": 0, "max_value": 100})
    building_sqft: Series[Integer] = pa.Field(nullable=True, ge=0)
    lot_size_sqft: Series[Integer] = pa.Field(nullable=True, ge=0)
    year_built: Series[Integer] = pa.Field(
        nullable=True, in_range={"min_value": 1600, "max_value": _LATEST_YEAR}
    )
    assessed_value: Series[Number] = pa.Field(**_money)
    last_sale_date: Series[Date] = pa.Field(nullable=True)
    last_sale_amount: Series[Number] = pa.Field(**_money)
    open_loans: Series[Integer] = pa.Field(nullable=True, in_range={"min_value": 0, "max_value": 100})
    loan_balance: Series[Number] = pa.Field(**_money)
    estimated_value: Series[Number] = pa.Field(**_money)
    ltv: Series[Number] = pa.Field(nullable=True, in_range={"min_value": 0, "max_value": MAX_LTV_PERCENT})
    equity: Series[Number] = pa.Field(nullable=True)  # negative when the owner is underwater
    mls_status: Series[Text] = pa.Field(nullable=True)
    mls_date: Series[Date] = pa.Field(nullable=True)
    mls_amount: Series[Number] = pa.Field(**_money)
    lien_amount: Series[Number] = pa.Field(**_money)
    marketing_lists: Series[TextList] = pa.Field(nullable=True)
    date_added_to_list: Series[Date] = pa.Field(nullable=True)
    method_of_add: Series[Text] = pa.Field(nullable=True)
    email: Series[Text] = pa.Field(nullable=True, str_contains="@")
    alt_emails: Series[TextList] = pa.Field(nullable=True)
    phone: Series[Text] = pa.Field(nullable=True, str_matches=r"^\+[1-9]\d{6,14}$")
    alt_phones: Series[TextList] = pa.Field(nullable=True)
    dnc_phones: Series[TextList] = pa.Field(nullable=True)
    litigator: Series[Flag] = pa.Field(nullable=True)
    addr_std: Series[Text] = pa.Field(nullable=True)
    addr_bare: Series[Text] = pa.Field(nullable=True)
    addr_city: Series[Text] = pa.Field(nullable=True)
    addr_hash: Series[Text] = pa.Field(nullable=True, str_matches=r"^[0-9a-f]{64}$")
    mak: Series[Text] = pa.Field(nullable=True, str_matches=r"^\d{10}$")

    @pa.check("property_state", name="us_state", error="not a US state or territory code")
    def _state_is_us(cls, state: Series[Text]) -> Series[bool]:
        """Two upper-case letters are not enough: XX is not a state."""
        return state.isin(_STATES)

    @pa.dataframe_check(name="has_locality", error=_LOCALITY_ERROR, ignore_na=False)
    def _has_zip_or_city_state(cls, frame: pd.DataFrame) -> Series[bool]:
        """The address must be placeable: a ZIP, or a city together with a state."""
        return frame["property_zip"].notna() | (
            frame["property_city"].notna() & frame["property_state"].notna()
        )

    class Config:
        strict = True
        ordered = True
        coerce = False


# Pandera reports a dataframe-level check by its error text; blame it on a column for the DLQ.
_FRAME_CHECK_COLUMNS: Final = {_LOCALITY_ERROR: "property_zip"}


@dataclass(frozen=True)
class RowFailure:
    """Why one frame row (by position) failed validation: columns and reasons, in table order."""

    position: int
    columns: tuple[str, ...]
    reasons: tuple[str, ...]


def row_failures(frame: pd.DataFrame) -> list[RowFailure]:
    """Validate `frame` lazily (every check, every row) and list the failing rows by position.

    `frame` must have a default RangeIndex. Problems that are not about rows (a missing column,
    a wrong dtype) are programming errors and raise TypeError.
    """
    try:
        StagingLeadsFrame.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as errors:
        return _row_failures(errors.failure_cases)
    return []


def split_valid_rows(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[RowFailure]]:
    """(rows that pass the schema, failures of the others): the failing rows are removed."""
    failures = row_failures(frame)
    if not failures:
        return frame, []
    keep = np.ones(len(frame), dtype=bool)
    keep[[failure.position for failure in failures]] = False
    return frame.iloc[keep].reset_index(drop=True), failures


# What a failed built-in check means, in words a data engineer can act on.
_FORMAT_TEXT: Final = {
    "property_zip": "not a 5-digit ZIP",
    "property_state": "not a 2-letter state code",
    "phone": "not a phone number in E.164 form",
    "email": "not an e-mail address",
    "addr_hash": "not a SHA-256 hex digest",
    "mak": "not a 10-digit Melissa address key",
}


def plain_reason(column: str, check: str, value: object) -> str:
    """`column: what is wrong ('value')` for one Pandera failure case."""
    shown = "" if value is None or (isinstance(value, float) and np.isnan(value)) else f" ({value!r})"
    if check.startswith("not_nullable"):
        return f"{column}: required, but the cell is empty"
    if check.startswith("str_matches"):
        return f"{column}: {_FORMAT_TEXT.get(column, 'not in the expected format')}{shown}"
    if check.startswith("in_range"):
        low, high = (check.split("(", 1)[1].rstrip(")").split(", ") + ["?"])[:2]
        return f"{column}: outside the plausible range {low} to {high}{shown}"
    if check.startswith("greater_than_or_equal_to"):
        return f"{column}: must not be negative{shown}"
    if check.startswith("field_uniqueness") or check.startswith("unique"):
        return f"{column}: appears twice{shown}"
    return f"{column}: {check}{shown}"


def _row_failures(cases: pd.DataFrame) -> list[RowFailure]:
    """Group pandera failure cases by row into `RowFailure`s."""
    structural = cases[cases["index"].isna()]
    if len(structural):
        raise TypeError("staging frame does not match the schema:\n" + structural.to_string())
    by_row: dict[int, dict[str, str]] = {}
    for column, check, value, index in cases[["column", "check", "failure_case", "index"]].itertuples(index=False):
        blamed = _FRAME_CHECK_COLUMNS.get(str(check))
        if blamed is not None:
            target, reason = blamed, f"{blamed}: {check}"
        else:
            target, reason = str(column), plain_reason(str(column), str(check), value)
        by_row.setdefault(int(index), {}).setdefault(target, reason)
    order = {name: i for i, name in enumerate(STAGING_COLUMN_NAMES)}
    failures = []
    for position in sorted(by_row):
        reasons = by_row[position]
        columns = tuple(sorted(reasons, key=lambda c: order.get(c, len(order))))
        failures.append(RowFailure(position, columns, tuple(reasons[c] for c in columns)))
    return failures


# ---------------------------------------------------------------------------------------------
# Read-back contracts: what the ingest stages wrote, checked by their asset checks
# ---------------------------------------------------------------------------------------------


class StagedRowsTable(pa.DataFrameModel):
    """`leads_staging` rows of one upload, read back after the COPY."""

    row_number: Series[int] = pa.Field(ge=1, unique=True)
    property_address: Series[pd.StringDtype] = pa.Field(nullable=False)
    property_state: Series[pd.StringDtype] = pa.Field(nullable=True, isin=_STATES)
    property_zip: Series[pd.StringDtype] = pa.Field(nullable=True, str_matches=ZIP5)
    email: Series[pd.StringDtype] = pa.Field(nullable=True, str_matches=EMAIL)
    phone: Series[pd.StringDtype] = pa.Field(nullable=True, str_matches=E164)
    ltv: Series[float] = pa.Field(nullable=True, ge=0, le=MAX_LTV_PERCENT)
    estimated_value: Series[float] = pa.Field(nullable=True, ge=0)
    loan_balance: Series[float] = pa.Field(nullable=True, ge=0)
    addr_hash: Series[pd.StringDtype] = pa.Field(nullable=True, str_matches=r"^[0-9a-f]{64}$")

    class Config:
        coerce = True


class UploadLeadsTable(pa.DataFrameModel):
    """`leads` an upload's rows became (through `lead_sources`), read back after the merge."""

    id: Series[pd.StringDtype] = pa.Field(unique=True)
    mak: Series[pd.StringDtype] = pa.Field(nullable=True, str_matches=MAK)
    property_state: Series[pd.StringDtype] = pa.Field(nullable=True, isin=_STATES)
    property_zip: Series[pd.StringDtype] = pa.Field(nullable=True, str_matches=ZIP5)
    email: Series[pd.StringDtype] = pa.Field(nullable=True, str_matches=EMAIL)
    phone: Series[pd.StringDtype] = pa.Field(nullable=True, str_matches=E164)
    addr_hash: Series[pd.StringDtype] = pa.Field(nullable=True)
    apn: Series[pd.StringDtype] = pa.Field(nullable=True)

    @pa.dataframe_check(name="has_a_dedupe_key", ignore_na=False)
    def _has_a_key(cls, frame: pd.DataFrame) -> Series[bool]:
        """A lead nothing can match again would be duplicated by the next upload."""
        return frame["mak"].notna() | frame["addr_hash"].notna() | frame["apn"].notna()

    class Config:
        coerce = True
