"""One chunk of an upload: normalized and validated into staging rows, rejects and dropped values,
and rendered as bytes for ``COPY leads_staging ... FROM STDIN (FORMAT csv)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from equity_assets.ingest import normalize as norm
from equity_assets.ingest.columnar import _blank_to_null, _mask
from equity_assets.ingest.columns import STAGING_COLUMN_NAMES, STAGING_COLUMNS, HeaderMap
from equity_assets.ingest.schemas import row_failures


@dataclass(frozen=True)
class Reject:
    """A data row that was not staged: its 1-based data-row number, why, and the row as read.

    `column` is the failing staging column, or several joined with "," (None for rows that could
    not be split into the header's fields). `raw` maps header -> original text.
    """

    row_number: int
    column: str | None
    reason: str
    raw: dict[str, str]


@dataclass(frozen=True)
class DroppedValue:
    """A value removed from a staged row (an invalid phone, e-mail or MAK): the row stays."""

    row_number: int
    column: str
    reason: str
    value: str


@dataclass
class ParsedChunk:
    """One chunk of an upload: staged rows (exactly the staging columns), rejects, dropped values."""

    frame: pd.DataFrame
    rejects: list[Reject]
    dropped: list[DroppedValue]
    copy_csv: bytes | None = None  # filled when read_upload(copy_csv=True)
    blank_rows: list[int] = field(default_factory=list)  # row numbers of all-empty records, skipped

    @property
    def file_rows(self) -> int:
        """Data records of the file this chunk accounts for (blank records are not data)."""
        return len(self.frame) + len(self.rejects)


def _unique_names(headers: tuple[str, ...]) -> list[str]:
    """Header names made unique for dict keys ("Phone", "Phone (2)")."""
    seen: dict[str, int] = {}
    names = []
    for header in headers:
        seen[header] = seen.get(header, 0) + 1
        names.append(header if seen[header] == 1 else f"{header} ({seen[header]})")
    return names


# --- normalizing one chunk ----------------------------------------------------------------------
# How each `parser` kind of the column table (`columns.STAGING_COLUMNS`) fills its column.
_TEXT_PARSERS: Final = {
    "text": norm.clean_text,
    "spaced": norm.collapse_spaces,
    "county": norm.normalize_county,
    "state": norm.normalize_state,
    "apn": norm.normalize_apn,
    "list": norm.split_list,
}
_TYPED_PARSERS: Final = {
    "bool": norm.parse_bool,
    "int": norm.parse_int,
    "number": norm.parse_number,
    "money": norm.parse_money,
    "percent": norm.parse_percent,
    "date": norm.parse_date,
}
_PROBLEM_TEXT: Final = {
    "bool": "not a yes/no value",
    "int": "not a whole number",
    "number": "not a number",
    "money": "not an amount",
    "percent": "not a percentage",
    "date": "not a valid date (YYYY-MM-DD or MM/DD/YYYY)",
}


@dataclass
class _ChunkBuilder:
    """Normalizes the raw text columns of one chunk into staging columns, collecting problems."""

    raw: pa.Table
    header_map: HeaderMap
    columns: dict[str, Any] = field(default_factory=dict)
    _sources: dict[str, pa.Array] = field(default_factory=dict)
    problems: list[tuple[str, np.ndarray, str]] = field(default_factory=list)
    dropped: list[tuple[str, np.ndarray, pa.Array, str]] = field(default_factory=list)
    line: Any = None

    def source(self, name: str) -> pa.Array:
        """The raw text column feeding staging field `name` (all NULL when the file lacks it)."""
        if name not in self._sources:
            position = self.header_map.fields.get(name)
            self._sources[name] = (
                pa.nulls(self.raw.num_rows, pa.string()) if position is None
                else self.raw.column(position).combine_chunks()
            )
        return self._sources[name]

    def typed(self, name: str, parsed: norm.Parsed, kind: str) -> None:
        """Store a parsed column; its unreadable values become row problems."""
        self.columns[name] = parsed.values
        if parsed.invalid.any():
            self.problems.append((name, parsed.invalid, _PROBLEM_TEXT[kind]))

    def contact(self, name: str, parsed: norm.Parsed, raw: pa.Array, reason: str) -> pd.Series:
        """Keep valid contact values; invalid ones are dropped (reported), the row stays."""
        if parsed.invalid.any():
            self.dropped.append((name, parsed.invalid, raw, reason))
        return parsed.values


def _blank_records(raw: pa.Table) -> np.ndarray:
    """Rows whose every cell is empty or spaces (spreadsheets leave them below the data)."""
    filled = np.zeros(raw.num_rows, dtype=bool)
    for column in raw.columns:
        text = column.combine_chunks()
        if pa.types.is_string(text.type) or pa.types.is_large_string(text.type):
            filled |= _mask(pc.greater(pc.utf8_length(pc.utf8_trim_whitespace(text)), 0))
        else:
            filled |= _mask(pc.is_valid(text))
        if filled.all():
            break
    return ~filled


def build_chunk(raw: pa.Table, row_numbers: np.ndarray, header_map: HeaderMap) -> ParsedChunk:
    """Normalize and validate one chunk of raw text rows into a `ParsedChunk`.

    All-empty records are skipped (listed in `ParsedChunk.blank_rows`), not rejected."""
    blank = _blank_records(raw)
    if blank.any():
        chunk = build_chunk(raw.filter(pa.array(~blank)), row_numbers[~blank], header_map)
        chunk.blank_rows = row_numbers[blank].tolist()
        return chunk
    builder = _ChunkBuilder(raw, header_map)
    _normalize_fields(builder)
    _normalize_contacts(builder)
    columns = builder.columns
    columns["row_number"] = pd.Series(row_numbers, dtype=np.int64)
    ident = norm.address_identity(
        builder.line, builder.source("property_unit"), builder.source("property_city"),
        norm.to_arrow(columns["property_state"]), norm.to_arrow(columns["property_zip"]),
    )
    for name, values in zip(("addr_std", "addr_bare", "addr_city", "addr_hash"), ident):
        columns[name] = norm.to_series(values)
    frame = pd.DataFrame({name: _reset(columns[name]) for name in STAGING_COLUMN_NAMES})
    return _split_rejects(frame, builder, row_numbers)


def _reset(series: pd.Series) -> pd.Series:
    """Drop any index so columns align by position."""
    return series.reset_index(drop=True)


ZIP_NOT_REPAIRABLE: Final = ("ZIP has fewer than 5 digits and the state's ZIPs never begin with 0, "
                              "so a lost leading zero cannot explain it")


def _read_address_cells(b: _ChunkBuilder) -> None:
    """Parse the address cell; a whole "street city ST ZIP" in it fills the locality columns the
    row left empty (the file's own city / state / ZIP cells win)."""
    b.line = norm.parse_address_line(b.source("property_address"))
    for name, from_line in (("property_city", b.line.city), ("property_state", b.line.state),
                            ("property_zip", b.line.zip)):
        if from_line.null_count < len(from_line):
            b._sources[name] = pc.coalesce(_blank_to_null(b.source(name)), from_line)


def _normalize_fields(b: _ChunkBuilder) -> None:
    """Every non-contact staging column, by its parser kind, in table order (a state before its ZIP)."""
    _read_address_cells(b)
    for column in STAGING_COLUMNS:
        name, kind = column.name, column.parser
        if kind in _TEXT_PARSERS:
            b.columns[name] = _TEXT_PARSERS[kind](b.source(name))
        elif kind in _TYPED_PARSERS:
            b.typed(name, _TYPED_PARSERS[kind](b.source(name)), kind)
        elif kind == "zip":
            raw = b.source(name)
            b.columns[name] = b.contact(name, norm.repair_zip(raw, b.columns["property_state"]), raw,
                                        ZIP_NOT_REPAIRABLE)
        elif kind == "mailing_zip":
            b.columns[name] = norm.normalize_mailing_zip(b.source(name), b.columns["mailing_state"])
        elif kind == "mak":
            raw = b.source(name)
            b.columns[name] = b.contact(name, norm.parse_mak(raw), raw, "not a 10-digit Melissa address key")
    # PropStream writes 0 for an unknown year built.
    year = b.columns["year_built"]
    b.columns["year_built"] = year.mask(year == 0)
    _split_owner_name(b)


_COMPANY_RE: Final = (r"(?i)\b(?:LLC|L\.L\.C|INC|CORP|CORPORATION|CO|COMPANY|TRUST|TR|TRUSTEE|LP|LLP|LTD|BANK|"
                      r"HOLDINGS|PROPERTIES|INVESTMENTS?|PARTNERS|PARTNERSHIP|GROUP|ASSOCIATION|CHURCH|ESTATE OF)\b")


def _split_owner_name(b: _ChunkBuilder) -> None:
    """A one-cell owner name fills first/last (or company) on rows where those are all empty:
    "SMITH, JOHN" -> last SMITH, first JOHN; "John Smith" -> first John, last Smith; names with a
    company word (LLC, TRUST, ...) -> company name."""
    if "owner_full_name" not in b.header_map.fields:
        return
    full = norm.clean_text(b.source("owner_full_name"))
    empty = b.columns["first_name"].isna() & b.columns["last_name"].isna() & b.columns["company_name"].isna()
    use = full.notna() & empty
    if not use.any():
        return
    company = use & full.str.contains(_COMPANY_RE, regex=True).fillna(False).astype(bool)
    person = use & ~company
    comma = full.str.partition(",")
    spaced = full.str.strip().str.partition(" ")
    has_comma = full.str.contains(",", regex=False).fillna(False).astype(bool)
    first = comma[2].str.strip().where(has_comma, spaced[0])
    last = comma[0].str.strip().where(has_comma, spaced[2].str.strip())
    b.columns["company_name"] = b.columns["company_name"].mask(company, full)
    b.columns["first_name"] = b.columns["first_name"].mask(person, first.replace("", pd.NA))
    b.columns["last_name"] = b.columns["last_name"].mask(person, last.replace("", pd.NA))


def _normalize_contacts(b: _ChunkBuilder) -> None:
    """Phones (E.164, DNC flags) and e-mails from however many slots the file has."""
    n = b.raw.num_rows
    phones, dnc_flags = [], []
    for slot, position in b.header_map.phones:
        raw = b.raw.column(position).combine_chunks()
        phones.append(b.contact(b.header_map.headers[position], norm.normalize_phone(raw), raw,
                                "not a valid phone number (10-digit US number or +country code)"))
        dnc_position = b.header_map.phone_dnc.get(slot)
        flag = (norm.parse_flag(b.raw.column(dnc_position).combine_chunks()).to_numpy(dtype=bool)
                if dnc_position is not None else np.zeros(n, dtype=bool))
        dnc_flags.append(flag)
    emails = []
    for slot, position in b.header_map.emails:
        raw = b.raw.column(position).combine_chunks()
        emails.append(b.contact(b.header_map.headers[position], norm.normalize_email(raw), raw,
                                "not a valid e-mail address"))
    b.columns["phone"], b.columns["alt_phones"] = _primary_and_rest(phones, n)
    b.columns["dnc_phones"] = (
        norm.distinct_values([phone.where(pd.Series(flag), None) for phone, flag in zip(phones, dnc_flags)])
        if phones else _null_lists(n)
    )
    b.columns["email"], b.columns["alt_emails"] = _primary_and_rest(emails, n)


def _primary_and_rest(slots: list[pd.Series], n: int) -> tuple[pd.Series, pd.Series]:
    """First valid value and the other distinct ones (all NULL when the file has no such column)."""
    if not slots:
        return norm.to_series(pa.nulls(n, pa.string())), _null_lists(n)
    return norm.collect_contacts(slots)


def _null_lists(n: int) -> pd.Series:
    """An all-NULL text[] column."""
    return norm.to_series(pa.nulls(n, pa.list_(pa.string())))


def _split_rejects(frame: pd.DataFrame, b: _ChunkBuilder, row_numbers: np.ndarray) -> ParsedChunk:
    """Merge normalization problems and schema failures per row; keep the rows with neither."""
    reasons: dict[int, dict[str, str]] = {}
    raw_text = {name: b.source(name) for name, _, _ in b.problems}
    for name, mask, text in b.problems:
        values = raw_text[name]
        for position in np.flatnonzero(mask).tolist():
            reasons.setdefault(position, {})[name] = f"{name}: {text} ({values[position].as_py()!r})"
    for failure in row_failures(frame):
        row = reasons.setdefault(failure.position, {})
        for column, reason in zip(failure.columns, failure.reasons):
            row.setdefault(column, reason)
    order = {name: i for i, name in enumerate(STAGING_COLUMN_NAMES)}
    positions = sorted(reasons)
    raw_rows = _raw_rows(b.raw, positions, b.header_map.headers)
    rejects = []
    for position, raw in zip(positions, raw_rows):
        row = reasons[position]
        columns = sorted(row, key=lambda c: order.get(c, len(order)))
        rejects.append(Reject(int(row_numbers[position]), ",".join(columns), "; ".join(row[c] for c in columns), raw))
    keep = np.ones(len(frame), dtype=bool)
    keep[positions] = False
    dropped = _dropped_values(b, row_numbers, keep)
    good = frame.iloc[keep].reset_index(drop=True) if positions else frame
    return ParsedChunk(good, rejects, dropped)


def _raw_rows(raw: pa.Table, positions: list[int], headers: tuple[str, ...]) -> list[dict[str, str]]:
    """The original text of some rows, as header -> value."""
    if not positions:
        return []
    names = _unique_names(headers)
    rows = raw.take(pa.array(positions, type=pa.int64())).to_pylist()
    return [{name: row[f"c{i}"] for i, name in enumerate(names)} for row in rows]


def _dropped_values(b: _ChunkBuilder, row_numbers: np.ndarray, kept: np.ndarray) -> list[DroppedValue]:
    """Dropped contact values of rows that were staged (a rejected row's raw keeps them anyway)."""
    out = []
    for name, mask, raw, reason in b.dropped:
        for position in np.flatnonzero(mask & kept).tolist():
            out.append(DroppedValue(int(row_numbers[position]), name, reason, raw[position].as_py()))
    out.sort(key=lambda d: d.row_number)
    return out


# --- COPY bytes ---------------------------------------------------------------------------------
def frame_to_copy_csv(
    frame: pd.DataFrame,
    columns: tuple[str, ...] = STAGING_COLUMN_NAMES,
    *,
    constants: Mapping[str, str] | None = None,
    extra: Mapping[str, pa.Array] | None = None,
) -> bytes:
    """CSV bytes for ``COPY leads_staging (<constants>, <extra>, <columns>) FROM STDIN (FORMAT csv)``,
    no header.

    `constants` (e.g. ``{"upload_id": "..."}``) become leading text columns with the same value
    in every row, without adding them to the frame; `extra` columns (one value per row, e.g. the
    minted lead ids) follow them.

    NULL -> unquoted empty field; strings always quoted (so ``""`` is the empty string and values
    such as ``\\.`` or ``NULL`` are data); booleans ``true``/``false``; dates ``YYYY-MM-DD``;
    ``text[]`` -> ``{"a","b"}`` with ``\\`` and ``"`` escaped inside elements. UTF-8.
    Raises ValueError on a NUL character, which PostgreSQL text cannot store.
    """
    table = pa.Table.from_pandas(frame.loc[:, list(columns)], preserve_index=False)
    constants = dict(constants or {})
    extra = dict(extra or {})
    arrays = [pa.array([value] * len(frame), pa.string()) for value in constants.values()]
    arrays += list(extra.values())
    arrays += [_copy_ready(table.column(name)) for name in columns]
    names = [*constants, *extra, *columns]
    sink = pa.BufferOutputStream()
    pcsv.write_csv(
        pa.table(arrays, names=names), sink,
        write_options=pcsv.WriteOptions(include_header=False, quoting_style="needed"),
    )
    data = sink.getvalue().to_pybytes()
    if b"\x00" in data:  # one memchr over the output instead of a scan per column
        bad = [name for name, array in zip(names, arrays) if _has_nul(array)]
        raise ValueError(f"column(s) {bad} contain a NUL character; PostgreSQL text cannot store it")
    return data


def copy_column_list(columns: tuple[str, ...] = STAGING_COLUMN_NAMES) -> str:
    """The column list for the COPY statement, in the order `frame_to_copy_csv` writes."""
    return ", ".join(columns)


def _has_nul(array: pa.Array) -> bool:
    """Whether a text column holds a NUL character."""
    if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
        return False
    return bool(pc.any(pc.match_substring(array, "\x00")).as_py())


def _copy_ready(column: pa.ChunkedArray) -> pa.Array:
    """One column in the text form PostgreSQL's CSV COPY expects."""
    array = column.combine_chunks() if column.num_chunks else pa.array([], column.type)
    kind = array.type
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        array = _pg_array_literals(array)
    elif pa.types.is_timestamp(kind):
        array = array.cast(pa.date32())
    elif pa.types.is_null(kind):
        array = array.cast(pa.string())
    return array


def _pg_array_literals(lists: pa.Array) -> pa.Array:
    """list<string> -> PostgreSQL array literal text; NULL lists stay NULL, NULL items -> NULL."""
    items = lists.values.cast(pa.string())
    escaped = pc.replace_substring(pc.replace_substring(items, "\\", "\\\\"), '"', '\\"')
    quoted = pc.fill_null(pc.binary_join_element_wise('"', escaped, '"', ""), "NULL")
    rebuilt = pa.ListArray.from_arrays(lists.offsets, quoted, mask=pc.is_null(lists))
    joined = pc.binary_join(rebuilt, ",")
    return pc.binary_join_element_wise("{", joined, "}", "")
