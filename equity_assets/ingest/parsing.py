"""Read an uploaded CSV (PropStream export or any CSV with the same core columns) into staging chunks.

`read_upload(path)` checks the whole file first and fails fast, then streams it:

1. **Scan** (one pass over the bytes in 4 MiB blocks, numpy-vectorized): encoding (UTF-8 with or
   without BOM, else CP-1252, else Latin-1), NUL bytes (many: a UTF-16/binary file), and the quote
   structure. The quote check is strict RFC 4180: a closing quote must be followed by a comma or a
   line end, and the file may not end inside quotes. Lenient parsers (Python's csv without
   `strict`, pandas, Arrow) instead glue the following lines into one field and silently swallow
   rows; here such a file fails as a whole with `CsvFormatError` naming the line. A quote inside
   an unquoted field (``12" pipe``) is allowed and kept as text.
2. **Header**: the first non-blank record, mapped with `columns.resolve_headers` (a missing
   address / ZIP-or-city+state column raises `MissingColumnsError`).
3. **Parse**: Arrow's CSV reader, single-threaded so it reports row numbers, every column as text.
   A row with more or fewer fields than the header becomes a reject (never silently padded or
   cut), and so does a row with a field longer than `MAX_FIELD_CHARS` or holding a NUL byte
   (PostgreSQL text cannot store one): one bad value costs its row, not the upload.
4. **Normalize + validate** each chunk of `chunk_rows` rows (`normalize`, `schemas`): the chunk's
   frame has exactly `STAGING_COLUMNS` in order; bad rows become `Reject`s (one per row, with the
   failing column(s), reasons and the raw row), bad contact values become `DroppedValue`s.

Counting: every data record of the file is either a staged row or a reject, so after iteration
``upload.staged_rows + upload.rejected_rows == upload.file_rows``. Blank lines are not records.
Because parsing streams, one error can only surface during iteration: an Arrow reader failure
(a record larger than its 4 MiB block). It raises `CsvFormatError`; the caller must treat the upload as failed and roll back what it staged (COPY
the whole upload in one transaction). Chunks are normalized on worker threads (`threads`), at
most `threads + 1` chunks ahead of the consumer.

`frame_to_copy_csv(frame)` renders a chunk as bytes for ``COPY leads_staging (...) FROM STDIN
(FORMAT csv)``: NULL is an unquoted empty field, every string is quoted (so ``""`` is an empty
string), ``text[]`` values are PostgreSQL array literals with every element quoted and escaped.

Where things are: steps 1-2 in `csv_scan`, step 4 and the COPY bytes in `chunk`, the streaming
reader (step 3) here; this module is the one import for callers.
"""

from __future__ import annotations

import csv
import time
from collections import deque
from collections.abc import Generator, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from os import PathLike, fspath
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from equity_assets.ingest.chunk import (
    DroppedValue,
    ParsedChunk,
    Reject,
    build_chunk,
    frame_to_copy_csv,
    _raw_rows,
    _unique_names,
)
from equity_assets.ingest.columns import STAGING_COLUMN_NAMES, HeaderMap, MissingColumnsError, resolve_headers
from equity_assets.ingest.csv_scan import CsvFormatError, read_header, scan_file
from equity_assets.ingest.lead_ids import now_millis, sequential_uuid7

__all__ = [
    "CsvFormatError",
    "DroppedValue",
    "MissingColumnsError",
    "ParsedChunk",
    "Reject",
    "UploadParse",
    "frame_to_copy_csv",
    "read_upload",
]

MAX_FIELD_CHARS: Final = 131_072  # Python's csv limit; no real lead field comes close
RAW_VALUE_CHARS: Final = 1_000  # a rejected row's values are kept in the DLQ up to this length
ARROW_BLOCK_BYTES: Final = 4 << 20  # smaller blocks measured faster for the streaming reader


# --- the upload ---------------------------------------------------------------------------------
def read_upload(
    path: str | PathLike[str],
    *,
    chunk_rows: int = 200_000,
    source: str = "propstream",
    threads: int = 2,
    copy_csv: bool = False,
    copy_constants: Mapping[str, str] | None = None,
    lead_ids: bool = False,
) -> UploadParse:
    """Check and open an uploaded CSV; iterate the result for `ParsedChunk`s.

    Raises `CsvFormatError` (malformed file, with the line) or `MissingColumnsError` (no address,
    or neither ZIP nor city + state) before any row is produced. `threads` chunks are normalized
    at once while the next one is parsed: the heavy work is in Arrow kernels, which release the
    GIL, so threads use both cores without copying data to other processes. With `copy_csv`,
    each chunk also carries its `frame_to_copy_csv(frame, constants=copy_constants)` bytes,
    rendered on the worker threads (columns: `UploadParse.copy_columns`); with `lead_ids` too,
    they also carry `new_lead_id`, the id a lead made from the row will take (`lead_ids.
    sequential_uuid7`: ascending with the row number, minted here so the merge need not).
    """
    if chunk_rows < 1 or threads < 1:
        raise ValueError("chunk_rows and threads must be >= 1")
    scan = scan_file(path)
    header = read_header(path, scan.encoding)
    header_map = resolve_headers(list(header.names))
    return UploadParse(
        path=fspath(path), source=source, encoding=scan.encoding, header_map=header_map,
        chunk_rows=chunk_rows, threads=threads, copy_csv=copy_csv,
        copy_constants=dict(copy_constants or {}), lead_ids=lead_ids, _data_offset=header.data_offset, _size=scan.size,
        _has_nul=scan.has_nul,
    )


@dataclass
class UploadParse:
    """A checked upload, iterable once into `ParsedChunk`s; counts are final after iteration."""

    path: str
    source: str
    encoding: str
    header_map: HeaderMap
    chunk_rows: int
    threads: int
    copy_csv: bool
    copy_constants: dict[str, str]
    _data_offset: int
    _size: int
    _has_nul: bool = False
    lead_ids: bool = False
    _millis: int = field(default_factory=now_millis, repr=False)
    file_rows: int = 0
    staged_rows: int = 0
    rejected_rows: int = 0
    dropped_values: int = 0
    blank_rows: int = 0
    complete: bool = False
    seconds: float = 0.0
    _started: bool = field(default=False, repr=False)

    @property
    def copy_columns(self) -> tuple[str, ...]:
        """Column order of `ParsedChunk.copy_csv`: the constants, the lead id, the staging columns."""
        return (*self.copy_constants, *(("new_lead_id",) if self.lead_ids else ()), *STAGING_COLUMN_NAMES)

    @property
    def headers(self) -> tuple[str, ...]:
        """The header row as written in the file."""
        return self.header_map.headers

    def __iter__(self) -> Iterator[ParsedChunk]:
        if self._started:
            raise RuntimeError("an UploadParse can be iterated only once; call read_upload again")
        self._started = True
        return self._chunks()

    def _chunks(self) -> Iterator[ParsedChunk]:
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="upload-chunk") as pool:
            in_flight: deque[Future[ParsedChunk]] = deque()
            for raw in _RecordStream(self).chunks(self.chunk_rows):
                in_flight.append(pool.submit(self._build, *raw))
                if len(in_flight) > self.threads:
                    started = yield from self._emit(in_flight.popleft(), started)
            while in_flight:
                started = yield from self._emit(in_flight.popleft(), started)
        self.seconds += time.perf_counter() - started
        self.complete = True

    def _build(self, table: pa.Table, numbers: np.ndarray, structural: list[Reject]) -> ParsedChunk:
        """Normalize and validate one raw chunk (runs on a worker thread)."""
        table, numbers, unreadable = _reject_unstorable_rows(table, numbers, self.header_map.headers, self._has_nul)
        chunk = build_chunk(table, numbers, self.header_map)
        chunk.rejects.extend(structural + unreadable)
        chunk.rejects.sort(key=lambda reject: reject.row_number)
        if self.copy_csv:
            extra = ({"new_lead_id": sequential_uuid7(self._millis, chunk.frame["row_number"].to_numpy())}
                     if self.lead_ids else None)
            chunk.copy_csv = frame_to_copy_csv(chunk.frame, constants=self.copy_constants, extra=extra)
        return chunk

    def _emit(self, future: Future[ParsedChunk], started: float) -> Generator[ParsedChunk, None, float]:
        """Count and yield a finished chunk; time spent by the consumer is not counted."""
        chunk = future.result()
        self.staged_rows += len(chunk.frame)
        self.rejected_rows += len(chunk.rejects)
        self.dropped_values += len(chunk.dropped)
        self.blank_rows += len(chunk.blank_rows)
        self.file_rows += chunk.file_rows
        self.seconds += time.perf_counter() - started
        yield chunk
        return time.perf_counter()


class _RecordStream:
    """Arrow's streaming CSV reader plus bookkeeping that gives every record its row number."""

    def __init__(self, upload: UploadParse) -> None:
        self.upload = upload
        self.width = len(upload.header_map.headers)
        self.names = [f"c{i}" for i in range(self.width)]
        self.invalid: list[tuple[int, str, int]] = []  # (row number, text, field count)

    def _on_invalid_row(self, row: Any) -> str:
        self.invalid.append((int(row.number), row.text, int(row.actual_columns)))
        return "skip"

    def _batches(self) -> Iterator[pa.RecordBatch]:
        if self.upload._data_offset >= self.upload._size:
            return
        source = pa.OSFile(self.upload.path)
        source.seek(self.upload._data_offset)
        encoding = {"utf-8": "utf8", "utf-8-sig": "utf8"}.get(self.upload.encoding, self.upload.encoding)
        try:
            yield from self._open(source, encoding)
        except pa.ArrowInvalid as error:
            raise CsvFormatError(f"the CSV reader stopped: {error}") from None
        finally:
            source.close()

    def _open(self, source: pa.NativeFile, encoding: str) -> pcsv.CSVStreamingReader:
        """Arrow's streaming reader: every column as text, nothing turned into NULL."""
        return pcsv.open_csv(
            source,
            read_options=pcsv.ReadOptions(
                use_threads=False, block_size=ARROW_BLOCK_BYTES, column_names=self.names,
                encoding=encoding,
            ),
            parse_options=pcsv.ParseOptions(
                newlines_in_values=True, ignore_empty_lines=True, invalid_row_handler=self._on_invalid_row,
            ),
            convert_options=pcsv.ConvertOptions(
                column_types={name: pa.string() for name in self.names},
                strings_can_be_null=False, quoted_strings_can_be_null=False,
                null_values=[], true_values=[], false_values=[],
            ),
        )

    def chunks(self, chunk_rows: int) -> Iterator[tuple[pa.Table, np.ndarray, list[Reject]]]:
        """Yield (raw text table, data-row numbers, rejects for malformed records) per chunk."""
        pending: list[pa.RecordBatch] = []
        pending_rows = 0
        next_number = 1
        for batch in self._batches():
            if batch.num_rows == 0:
                continue
            pending.append(batch)
            pending_rows += batch.num_rows
            if pending_rows >= chunk_rows:
                table = pa.Table.from_batches(pending)
                for start in range(0, pending_rows - pending_rows % chunk_rows, chunk_rows):
                    piece = table.slice(start, chunk_rows)
                    numbers, next_number = self._number_rows(piece.num_rows, next_number)
                    yield piece, numbers, self._take_structural(numbers[-1])
                leftover = pending_rows % chunk_rows
                pending = table.slice(pending_rows - leftover).to_batches() if leftover else []
                pending_rows = leftover
        table = pa.Table.from_batches(pending, schema=self._schema()) if pending else self._empty()
        numbers, next_number = self._number_rows(table.num_rows, next_number)
        structural = self._take_structural(None)
        if table.num_rows or structural:
            yield table, numbers, structural

    def _schema(self) -> pa.Schema:
        return pa.schema([(name, pa.string()) for name in self.names])

    def _empty(self) -> pa.Table:
        return self._schema().empty_table()

    def _number_rows(self, count: int, next_number: int) -> tuple[np.ndarray, int]:
        """Row numbers of the next `count` well-formed records, skipping malformed ones."""
        skipped = sorted(number for number, _, _ in self.invalid if number >= next_number)
        numbers = np.empty(count, dtype=np.int64)
        filled = 0
        candidate = next_number
        for bad in skipped:
            room = min(bad - candidate, count - filled)
            numbers[filled:filled + room] = np.arange(candidate, candidate + room)
            filled += room
            candidate = bad + 1 if filled < count else candidate + room
            if filled == count:
                break
        if filled < count:
            numbers[filled:] = np.arange(candidate, candidate + count - filled)
            candidate += count - filled
        return numbers, candidate

    def _take_structural(self, up_to: int | None) -> list[Reject]:
        """Rejects for malformed records numbered <= up_to (all remaining when None)."""
        ready = [entry for entry in self.invalid if up_to is None or entry[0] <= up_to]
        self.invalid = [entry for entry in self.invalid if not (up_to is None or entry[0] <= up_to)]
        headers = self.upload.header_map.headers
        return [
            Reject(
                row_number=number,
                column=None,
                reason=f"row has {fields} field(s); the header has {len(headers)}",
                raw=_raw_from_text(text, headers),
            )
            for number, text, fields in ready
        ]


def _raw_from_text(text: str, headers: tuple[str, ...]) -> dict[str, str]:
    """Split a malformed record's text into header -> value (extras as _extra_N)."""
    try:
        fields = next(csv.reader([text]), [])
    except csv.Error:
        return {"_line": text}
    raw = {name: value for name, value in zip(_unique_names(headers), fields)}
    for extra, value in enumerate(fields[len(headers):], start=1):
        raw[f"_extra_{extra}"] = value
    return raw


def _reject_unstorable_rows(table: pa.Table, numbers: np.ndarray, headers: tuple[str, ...],
                            check_nul: bool) -> tuple[pa.Table, np.ndarray, list[Reject]]:
    """Take out rows with a field over MAX_FIELD_CHARS or holding a NUL byte, as rejects."""
    problems: dict[int, list[str]] = {}
    for position, column in enumerate(table.columns):
        if column.num_chunks == 0 or len(column) == 0:
            continue
        values = column.combine_chunks()
        longest_bytes = pc.max(pc.binary_length(values)).as_py()  # bytes first: cheaper
        if longest_bytes is not None and longest_bytes > MAX_FIELD_CHARS:
            lengths = pc.utf8_length(values)
            for row in np.flatnonzero(np.asarray(pc.fill_null(pc.greater(lengths, MAX_FIELD_CHARS), False))).tolist():
                problems.setdefault(row, []).append(
                    f"field {headers[position]!r} is {lengths[row].as_py():,} characters long; the limit is"
                    f" {MAX_FIELD_CHARS:,} (a broken quote or a pasted document?)")
        if check_nul:
            for row in np.flatnonzero(np.asarray(pc.fill_null(pc.match_substring(values, "\x00"), False))).tolist():
                problems.setdefault(row, []).append(
                    f"field {headers[position]!r} contains a NUL byte, which PostgreSQL text cannot store")
    if not problems:
        return table, numbers, []
    positions = sorted(problems)
    rejects = [
        Reject(int(numbers[row]), None, "; ".join(problems[row]),
               {name: _storable(value) for name, value in raw.items()})
        for row, raw in zip(positions, _raw_rows(table, positions, headers))
    ]
    keep = np.ones(table.num_rows, dtype=bool)
    keep[positions] = False
    return table.filter(pa.array(keep)), numbers[keep], rejects


def _storable(value: str | None) -> str | None:
    """A raw value as the DLQ can keep it (jsonb refuses NUL), long ones cut with a note."""
    if value is None:
        return None
    value = value.replace("\x00", "\\0")
    if len(value) > RAW_VALUE_CHARS:
        value = f"{value[:RAW_VALUE_CHARS]}... ({len(value):,} characters)"
    return value
