"""Lead ids minted on the client: UUID v7, and for staged rows ascending with the row number."""

import uuid

import numpy as np
import pytest

from equity_assets.ingest.lead_ids import now_millis, sequential_uuid7


def test_sequential_ids_are_v7_unique_and_sort_as_their_sequence():
    millis = now_millis()
    rows = np.array([1, 2, 3, 63, 64, 65, 16_383, 16_384, 1 << 20, (1 << 28) + 5, (1 << 32) - 1])
    shuffled = np.random.default_rng(1).permutation(rows)
    ids = [uuid.UUID(h) for h in sequential_uuid7(millis, shuffled).to_pylist()]
    assert all(i.version == 7 and i.variant == uuid.RFC_4122 and i.int >> 80 == millis for i in ids)
    by_row = dict(zip(shuffled.tolist(), ids))
    assert [by_row[r].bytes for r in sorted(by_row)] == sorted(i.bytes for i in ids)
    many = sequential_uuid7(millis, np.arange(1, 200_001)).to_pylist()
    assert len(set(many)) == 200_000 and many == sorted(many)
    # the same rows minted twice in one millisecond still differ (42 random bits)
    assert set(many[:1000]).isdisjoint(sequential_uuid7(millis, np.arange(1, 1001)).to_pylist())


def test_a_sequence_outside_32_bits_is_refused():
    with pytest.raises(ValueError):
        sequential_uuid7(now_millis(), np.array([1 << 32]))
