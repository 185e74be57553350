"""Arrow <-> pandas plumbing of the normalizers: conversions, per-distinct evaluation, masks.

The normalization policy is described in :mod:`equity_assets.ingest.normalize`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import wraps
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
