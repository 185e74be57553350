"""Read an uploaded CSV (PropStream export or any CSV with the same core columns) into staging chunks.

`read_upload(path)` checks the whole file first and fails fast, then streams it:

1. **Scan** (one pass over the bytes in 4 MiB blocks, numpy-vectorized): encoding (UTF-8 with or
   without BOM, else CP-1252, else Latin-1), NUL bytes (UTF-16/binary files), and the quote
   structure. The quote check is strict RFC 4180: a closing quote must be followed by a comma or a
   line end, and the file may not end inside quotes. Lenient parsers (Python's csv without
   `strict`, pandas, Arrow) instead glue the following lines into one field and silently swallow
   rows; here such a file fails as a whole with `CsvFormatError` naming the line. A quote inside
   an unquoted field (``12" pipe``) is allowed and kept as text.
2. **Header**: the first non-blank record, mapped with `columns.resolve_headers` (a missing
   address / ZIP-or-city+state column raises `MissingColumnsError`).
3. **Parse**: Arrow's CSV reader, single-threaded so it reports row numbers, every column as text.
   A row with more or fewer fields than the header becomes a reject (never silently padded or
   cut). A field longer than `MAX_FIELD_CHARS` fails the upload with `CsvFormatError`.
4. **Normalize + validate** each chunk of `chunk_rows` rows (`normalize`, `schemas`): the chunk's
   frame has exactly `STAGING_COLUMNS` in order; bad rows become `Reject`s (one per row, with the
   failing column(s), reasons and the raw row), bad contact values become `DroppedValue`s.

Counting: every data record of the file is either a staged row or a reject, so after iteration
``upload.staged_rows + upload.rejected_rows == upload.file_rows``. Blank lines are not records.
Because parsing streams, two errors can only surface during iteration: a field over
`MAX_FIELD_CHARS` and an Arrow reader failure (a record larger than its 4 MiB block). Both raise
`CsvFormatError`; the caller must treat the upload as failed and roll back what it staged (COPY
the whole upload in one transaction). Chunks are normalized on worker threads (`threads`), at
most `threads + 1` chunks ahead of the consumer.

`frame_to_copy_csv(frame)` renders a chunk as bytes for ``COPY leads_staging (...) FROM STDIN
(FORMAT csv)``: NULL is an unquoted empty field, every string is quoted (so ``""`` is an empty
string), ``text[]`` values are PostgreSQL array literals with every element quoted and escaped.
"""

from __future__ import annotations

import codecs
import csv
import io
import time
from collections import deque
from collections.abc import Generator, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from os import PathLike, fspath
from typing import Any, Final

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from equity_assets.ingest import normalize as norm
from equity_assets.ingest.columns import (
    STAGING_COLUMN_NAMES,
    HeaderMap,
    MissingColumnsError,
    UploadFormatError,
    resolve_headers,
)
from equity_assets.ingest.schemas import row_failures

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
SCAN_BLOCK_BYTES: Final = 4 << 20  # cache-friendly; 16 MiB blocks measured 2.5x slower
ARROW_BLOCK_BYTES: Final = 4 << 20  # smaller blocks measured faster for the streaming reader
HEADER_PROBE_BYTES: Final = 1 << 20
_QUOTE, _COMMA, _LF, _CR = 34, 44, 10, 13
_CP1252_UNDEFINED: Final = (b"\x81", b"\x8d", b"\x8f", b"\x90", b"\x9d")


class CsvFormatError(UploadFormatError):
    """The file is not a well-formed CSV; the whole upload is refused.

    `line` is the 1-based physical line where the problem was found (when known).
    """

    def __init__(self, reason: str, line: int | None = None) -> None:
        self.reason = reason
        self.line = line
        super().__init__(f"line {line}: {reason}" if line is not None else reason)


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


# --- scanning -----------------------------------------------------------------------------------
class _QuoteScanner:
    """Strict RFC 4180 quote check over a byte stream, vectorized per block with numpy.

    Quotes come in runs of one or more '"' characters. A run's effect depends only on its length,
    on whether it starts a field (previous byte is a comma, line end or start of file) and on the
    current state (inside quotes or not): at a field start an odd run opens a quoted field; inside
    quotes an odd run closes it (and must be followed by a comma or line end) while an even run is
    escaped quotes; elsewhere a run is literal text. Each run is therefore one of the functions
    toggle / reset-to-outside / identity on the 2-state machine, and the state before every run
    follows from a cumulative count of toggles since the last reset.
    """

    def __init__(self, offset: int) -> None:
        self.inside = 0
        self.prev = _LF  # start of file counts as a line start
        self.offset = offset  # file offset of the next byte to scan
        self.opened_at = 0  # file offset of the quote that opened the current quoted field

    def scan(self, buffer: bytearray, length: int, at_eof: bool, scratch: np.ndarray) -> None:
        """Scan buffer[:length]; the caller keeps any trailing quote run back for the next call."""
        if length:
            self._scan_runs(buffer, length, at_eof, scratch)
            self.offset += length
            self.prev = buffer[length - 1]
        if at_eof and self.inside:
            raise _ScanError(
                "unterminated quoted field: the file ends inside quotes"
                " (a stray or unescaped '\"' opened a field that never closes)",
                self.opened_at,
            )

    def _scan_runs(self, buffer: bytearray, length: int, at_eof: bool, scratch: np.ndarray) -> None:
        data = np.frombuffer(buffer, dtype=np.uint8, count=length)
        quotes = np.flatnonzero(np.equal(data, _QUOTE, out=scratch[:length]))
        if quotes.size == 0:
            return
        breaks = np.flatnonzero(np.diff(quotes) != 1) + 1
        starts = quotes[np.concatenate(([0], breaks))]
        ends = quotes[np.concatenate((breaks - 1, [quotes.size - 1]))]
        odd = ((ends - starts + 1) & 1) == 1
        before_byte = np.where(starts > 0, data[np.maximum(starts - 1, 0)], self.prev)
        after_index = ends + 1
        past_end = after_index >= length
        after_byte = np.where(past_end, _LF, data[np.minimum(after_index, length - 1)])
        field_start = _is_boundary(before_byte)
        field_end = _is_boundary(after_byte) | (past_end & at_eof)

        toggles = field_start & odd
        resets = ~field_start & odd
        count = np.cumsum(toggles)
        last_reset = np.maximum.accumulate(np.where(resets, np.arange(odd.size), -1))
        since_reset = count - count[np.maximum(last_reset, 0)]
        after_state = np.where(last_reset >= 0, since_reset & 1, (self.inside + count) & 1)
        before_state = np.concatenate(([self.inside], after_state[:-1]))

        bad = ((before_state == 1) & odd & ~field_end) | (
            (before_state == 0) & field_start & ~odd & ~field_end
        )
        if bad.any():
            position = int(ends[np.argmax(bad)])
            found = bytes(buffer[position + 1:position + 2]).decode("latin-1", "replace")
            raise _ScanError(
                f"malformed quoted field: a closing quote is followed by {found!r} instead of a comma"
                " or line end (an unescaped '\"' inside a quoted field? write it as '\"\"')",
                self.offset + position,
            )
        opened = np.flatnonzero((before_state == 0) & (after_state == 1))
        if opened.size:
            self.opened_at = self.offset + int(starts[opened[-1]])
        self.inside = int(after_state[-1])


class _ScanError(Exception):
    """A format problem at a byte offset; `scan_file` turns the offset into a line number."""

    def __init__(self, reason: str, offset: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.offset = offset


def _line_at(path: str | PathLike[str], offset: int) -> int:
    """1-based line number of a byte offset (only on the error path: counting costs a pass)."""
    line, done = 1, 0
    with open(path, "rb") as handle:
        while done < offset and (block := handle.read(min(SCAN_BLOCK_BYTES, offset - done))):
            line += block.count(b"\n")
            done += len(block)
    return line


def _is_boundary(byte: np.ndarray) -> np.ndarray:
    """Bytes that separate fields: comma, LF, CR."""
    return (byte == _COMMA) | (byte == _LF) | (byte == _CR)


@dataclass(frozen=True)
class FileScan:
    """What the byte scan learned: the encoding to decode with and the file size."""

    encoding: str  # "utf-8", "utf-8-sig", "cp1252" or "latin-1" (Python codec names)
    size: int


def scan_file(path: str | PathLike[str]) -> FileScan:
    """One pass over the bytes: detect the encoding and refuse malformed files (see module doc).

    Reads into one reused buffer: fresh multi-MiB allocations per block cost more in page faults
    than the scan itself.
    """
    try:
        return _scan(path)
    except _ScanError as error:
        raise CsvFormatError(error.reason, _line_at(path, error.offset)) from None


def _scan(path: str | PathLike[str]) -> FileScan:
    with open(path, "rb", buffering=0) as handle:
        head = handle.read(4)
        if not head:
            raise CsvFormatError("the file is empty (no header row)")
        if head.startswith((b"\xff\xfe", b"\xfe\xff")):
            raise CsvFormatError("the file is UTF-16; save it as UTF-8 CSV")
        bom = head.startswith(codecs.BOM_UTF8)
        handle.seek(3 if bom else 0)
        buffer = bytearray(2 * SCAN_BLOCK_BYTES)
        view = memoryview(buffer)
        scratch = np.empty(len(buffer), dtype=bool)
        scanner, encoding = _QuoteScanner(3 if bom else 0), _EncodingCheck()
        size, carry = (3 if bom else 0), 0
        while True:
            got = handle.readinto(view[carry:carry + SCAN_BLOCK_BYTES])
            size += got
            end = carry + got
            nul = buffer.find(b"\x00", carry, end)
            if nul >= 0:
                raise _ScanError("the file contains NUL bytes (is it UTF-16 or binary?)", scanner.offset + nul)
            encoding.feed(buffer, carry, end)
            at_eof = got == 0
            cut = end if at_eof else _cut_before_quote_run(buffer, end)
            scanner.scan(buffer, cut, at_eof, scratch)
            if at_eof:
                break
            buffer[: end - cut] = buffer[cut:end]
            carry = end - cut
    return FileScan(encoding=encoding.result(bom), size=size)


def _cut_before_quote_run(buffer: bytearray, end: int) -> int:
    """Where to stop this block so the last quote run is scanned together with the byte after it."""
    cut = end - 1
    while cut > 0 and buffer[cut - 1] == _QUOTE:
        cut -= 1
    if cut <= 0 or end - cut > SCAN_BLOCK_BYTES:
        raise CsvFormatError("a run of quote characters longer than the scan block")
    return cut


class _EncodingCheck:
    """Decides UTF-8 vs CP-1252 vs Latin-1 from the bytes, ASCII blocks costing one max()."""

    _PIECE = 64 << 10  # decode in small pieces so the temporary strings reuse heap memory

    def __init__(self) -> None:
        self.utf8 = codecs.getincrementaldecoder("utf-8")()
        self.is_utf8 = True
        self.is_cp1252 = True

    def feed(self, buffer: bytearray, start: int, end: int) -> None:
        if end <= start or int(np.frombuffer(buffer, np.uint8, end - start, start).max()) < 0x80:
            if end <= start:
                self.is_utf8 = self.is_utf8 and _decodes(self.utf8, b"", final=True)
            return
        view = memoryview(buffer)
        if self.is_utf8:
            for piece in range(start, end, self._PIECE):
                if not _decodes(self.utf8, view[piece:min(piece + self._PIECE, end)]):
                    self.is_utf8 = False
                    break
        if self.is_cp1252:
            self.is_cp1252 = all(buffer.find(byte, start, end) < 0 for byte in _CP1252_UNDEFINED)

    def result(self, bom: bool) -> str:
        if self.is_utf8:
            return "utf-8-sig" if bom else "utf-8"
        return "cp1252" if self.is_cp1252 else "latin-1"


def _decodes(decoder: codecs.IncrementalDecoder, block: Any, final: bool = False) -> bool:
    """Feed the UTF-8 decoder; False once the bytes stop being UTF-8."""
    try:
        decoder.decode(block, final)
    except UnicodeDecodeError:
        return False
    return True


# --- header -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Header:
    names: tuple[str, ...]
    data_offset: int  # byte offset where the first data record starts


def read_header(path: str | PathLike[str], encoding: str) -> _Header:
    """The first non-blank record and the byte offset just after it."""
    with open(path, "rb") as handle:
        probe = handle.read(HEADER_PROBE_BYTES)
        at_eof = len(probe) < HEADER_PROBE_BYTES
    decoder = codecs.getincrementaldecoder(encoding)()
    text = decoder.decode(probe, at_eof)
    lines = io.StringIO(text, newline="").readlines()
    reader = csv.reader(iter(lines), strict=True)
    try:
        header = next((record for record in reader if record), None)
    except csv.Error as error:
        raise CsvFormatError(f"unreadable header row: {error}", reader.line_num) from None
    if header is None:
        raise CsvFormatError("no header row: the file has only blank lines" if at_eof
                             else "no header row in the first MiB")
    if not at_eof and reader.line_num >= len(lines):
        raise CsvFormatError("the header row is longer than 1 MiB")
    consumed = "".join(lines[: reader.line_num])
    offset = len(consumed.encode(encoding))  # utf-8-sig re-adds the BOM's 3 bytes
    return _Header(tuple(header), offset)


# --- the upload ---------------------------------------------------------------------------------
def read_upload(
    path: str | PathLike[str],
    *,
    chunk_rows: int = 200_000,
    source: str = "propstream",
    threads: int = 2,
    copy_csv: bool = False,
    copy_constants: Mapping[str, str] | None = None,
) -> UploadParse:
    """Check and open an uploaded CSV; iterate the result for `ParsedChunk`s.

    Raises `CsvFormatError` (malformed file, with the line) or `MissingColumnsError` (no address,
    or neither ZIP nor city + state) before any row is produced. `threads` chunks are normalized
    at once while the next one is parsed: the heavy work is in Arrow kernels, which release the
    GIL, so threads use both cores without copying data to other processes. With `copy_csv`,
    each chunk also carries its `frame_to_copy_csv(frame, constants=copy_constants)` bytes,
    rendered on the worker threads (columns: `UploadParse.copy_columns`).
    """
    if chunk_rows < 1 or threads < 1:
        raise ValueError("chunk_rows and threads must be >= 1")
    scan = scan_file(path)
    header = read_header(path, scan.encoding)
    header_map = resolve_headers(list(header.names))
    return UploadParse(
        path=fspath(path), source=source, encoding=scan.encoding, header_map=header_map,
        chunk_rows=chunk_rows, threads=threads, copy_csv=copy_csv,
        copy_constants=dict(copy_constants or {}), _data_offset=header.data_offset, _size=scan.size,
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
        """Column order of `ParsedChunk.copy_csv`: the constants, then the staging columns."""
        return (*self.copy_constants, *STAGING_COLUMN_NAMES)

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
        _check_field_sizes(table, numbers, self.header_map.headers)
        chunk = build_chunk(table, numbers, self.header_map)
        chunk.rejects.extend(structural)
        chunk.rejects.sort(key=lambda reject: reject.row_number)
        if self.copy_csv:
            chunk.copy_csv = frame_to_copy_csv(chunk.frame, constants=self.copy_constants)
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


def _unique_names(headers: tuple[str, ...]) -> list[str]:
    """Header names made unique for dict keys ("Phone", "Phone (2)")."""
    seen: dict[str, int] = {}
    names = []
    for header in headers:
        seen[header] = seen.get(header, 0) + 1
        names.append(header if seen[header] == 1 else f"{header} ({seen[header]})")
    return names


def _check_field_sizes(table: pa.Table, numbers: np.ndarray, headers: tuple[str, ...]) -> None:
    """Fail the upload on any field longer than MAX_FIELD_CHARS (bytes first: cheaper)."""
    for position, column in enumerate(table.columns):
        if column.num_chunks == 0 or len(column) == 0:
            continue
        longest_bytes = pc.max(pc.binary_length(column)).as_py()
        if longest_bytes is None or longest_bytes <= MAX_FIELD_CHARS:
            continue
        lengths = pc.utf8_length(column.combine_chunks())
        over = np.flatnonzero(np.asarray(pc.fill_null(pc.greater(lengths, MAX_FIELD_CHARS), False)))
        if over.size:
            row = int(numbers[over[0]])
            size = lengths[int(over[0])].as_py()
            raise CsvFormatError(
                f"field {headers[position]!r} of data row {row} is {size:,} characters long;"
                f" the limit is {MAX_FIELD_CHARS:,} (a broken quote or a pasted document?)"
            )


# --- normalizing one chunk ----------------------------------------------------------------------
_TEXT_FIELDS: Final = (
    "first_name", "last_name", "company_name", "owner2_first_name", "owner2_last_name",
    "mailing_care_of", "property_type", "mls_status", "method_of_add", "property_unit",
    "mailing_unit",
)
_SPACED_FIELDS: Final = ("property_address", "mailing_address", "property_city", "mailing_city")
_COUNTY_FIELDS: Final = ("county", "mailing_county")
_BOOL_FIELDS: Final = ("owner_occupied", "do_not_mail", "litigator")
_INT_FIELDS: Final = ("bedrooms", "building_sqft", "lot_size_sqft", "year_built", "open_loans")
_MONEY_FIELDS: Final = (
    "assessed_value", "last_sale_amount", "loan_balance", "estimated_value", "equity",
    "mls_amount", "lien_amount",
)
_DATE_FIELDS: Final = ("last_sale_date", "mls_date", "date_added_to_list")
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
            filled |= norm._mask(pc.greater(pc.utf8_length(pc.utf8_trim_whitespace(text)), 0))
        else:
            filled |= norm._mask(pc.is_valid(text))
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
            b._sources[name] = pc.coalesce(norm._blank_to_null(b.source(name)), from_line)


def _normalize_fields(b: _ChunkBuilder) -> None:
    """Every non-contact staging column."""
    _read_address_cells(b)
    for name in _TEXT_FIELDS:
        b.columns[name] = norm.clean_text(b.source(name))
    for name in _SPACED_FIELDS:
        b.columns[name] = norm.collapse_spaces(b.source(name))
    for name in _COUNTY_FIELDS:
        b.columns[name] = norm.normalize_county(b.source(name))
    b.columns["property_state"] = norm.normalize_state(b.source("property_state"))
    b.columns["mailing_state"] = norm.normalize_state(b.source("mailing_state"))
    zip_raw = b.source("property_zip")
    b.columns["property_zip"] = b.contact("property_zip", norm.repair_zip(zip_raw, b.columns["property_state"]),
                                          zip_raw, ZIP_NOT_REPAIRABLE)
    b.columns["mailing_zip"] = norm.normalize_mailing_zip(b.source("mailing_zip"), b.columns["mailing_state"])
    b.columns["apn"] = norm.normalize_apn(b.source("apn"))
    for name in _BOOL_FIELDS:
        b.typed(name, norm.parse_bool(b.source(name)), "bool")
    for name in _INT_FIELDS:
        b.typed(name, norm.parse_int(b.source(name)), "int")
    # PropStream writes 0 for an unknown year built.
    year = b.columns["year_built"]
    b.columns["year_built"] = year.mask(year == 0)
    b.typed("bathrooms", norm.parse_number(b.source("bathrooms")), "number")
    for name in _MONEY_FIELDS:
        b.typed(name, norm.parse_money(b.source(name)), "money")
    b.typed("ltv", norm.parse_percent(b.source("ltv")), "percent")
    for name in _DATE_FIELDS:
        b.typed(name, norm.parse_date(b.source(name)), "date")
    b.columns["marketing_lists"] = norm.split_list(b.source("marketing_lists"))
    _split_owner_name(b)
    mak_raw = b.source("mak")
    b.columns["mak"] = b.contact("mak", norm.parse_mak(mak_raw), mak_raw, "not a 10-digit Melissa address key")


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
) -> bytes:
    """CSV bytes for ``COPY leads_staging (<constants>, <columns>) FROM STDIN (FORMAT csv)``, no header.

    `constants` (e.g. ``{"upload_id": "..."}``) become leading text columns with the same value
    in every row, without adding them to the frame.

    NULL -> unquoted empty field; strings always quoted (so ``""`` is the empty string and values
    such as ``\\.`` or ``NULL`` are data); booleans ``true``/``false``; dates ``YYYY-MM-DD``;
    ``text[]`` -> ``{"a","b"}`` with ``\\`` and ``"`` escaped inside elements. UTF-8.
    Raises ValueError on a NUL character, which PostgreSQL text cannot store.
    """
    table = pa.Table.from_pandas(frame.loc[:, list(columns)], preserve_index=False)
    constants = dict(constants or {})
    arrays = [pa.array([value] * len(frame), pa.string()) for value in constants.values()]
    arrays += [_copy_ready(table.column(name)) for name in columns]
    names = [*constants, *columns]
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

