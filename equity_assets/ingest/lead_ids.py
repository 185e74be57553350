"""Lead ids minted in bulk on the client: UUID version 7 (48-bit Unix milliseconds, version,
variant, the rest random), built with numpy from one `os.urandom` call.

A staged row carries the id the lead it may become will take (`sequential_uuid7`): minted on the
parser's worker threads, it costs the merge nothing, where `uuid_v7()` in SQL cost ~2.6 µs a row
(most of it `gen_random_uuid()`). Those ids put the row number in the bits after the version, so
one upload's ids ascend in file order and new leads enter the primary key at its right end.
"""

from __future__ import annotations

import os
import time

import numpy as np
import pyarrow as pa

SEQUENCE_LIMIT = 1 << 32  # row numbers that fit the 32 sequence bits


def _random_v7(n: int, millis: int) -> np.ndarray:
    """`n` × 16 bytes: the millisecond timestamp, version 7, RFC 4122 variant, random bits."""
    raw = np.frombuffer(os.urandom(16 * n), dtype=np.uint8).reshape(n, 16).copy()
    raw[:, :6] = np.frombuffer(millis.to_bytes(8, "big"), dtype=np.uint8)[2:]
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x70
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    return raw


def _hex(raw: np.ndarray) -> np.ndarray:
    """Rows of 16 bytes as 32 hex digits each (numpy bytes, no Python object per id)."""
    return np.frombuffer(raw.tobytes().hex().encode("ascii"), dtype="S32")


def now_millis() -> int:
    return time.time_ns() // 1_000_000


def uuid7_hex(n: int) -> list[str]:
    """`n` time-ordered UUIDs (version 7) as 32 hex digits."""
    if n == 0:
        return []
    return [h.decode("ascii") for h in _hex(_random_v7(n, now_millis()))]


def sequential_uuid7(millis: int, sequence: np.ndarray) -> pa.Array:
    """UUID v7 strings whose 32 bits after the version are `sequence` (e.g. row numbers, each
    < 2**32), 42 bits random: for one `millis`, the ids sort as `sequence` does (a uuid compares
    byte by byte). Returned as an Arrow string array of 32 hex digits."""
    seq = np.asarray(sequence, dtype=np.int64)
    if len(seq) and (seq.min() < 0 or seq.max() >= SEQUENCE_LIMIT):
        raise ValueError("sequence values must be in [0, 2**32)")
    raw = _random_v7(len(seq), millis)
    s = seq.astype(np.uint64)
    # version nibble | seq 31..28, seq 27..20, variant | seq 19..14, seq 13..6, seq 5..0 | 2 random
    raw[:, 6] = 0x70 | ((s >> 28) & 0x0F).astype(np.uint8)
    raw[:, 7] = ((s >> 20) & 0xFF).astype(np.uint8)
    raw[:, 8] = 0x80 | ((s >> 14) & 0x3F).astype(np.uint8)
    raw[:, 9] = ((s >> 6) & 0xFF).astype(np.uint8)
    raw[:, 10] = (((s & 0x3F) << 2).astype(np.uint8)) | (raw[:, 10] & 0x03)
    return pa.array(_hex(raw), pa.binary()).cast(pa.string())
