"""Deterministic "dice": pseudo-random draws that depend only on a seed and a key.

The sandbox derives every outcome (result codes, MAKs, matches, flags) from a keyed hash of the
normalized request content, so the same input gives the same answer on every call and on every
sandbox restart with the same seed, whatever the order or batching of requests.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")

_SLOT_BYTES = 4
_SLOTS = 16  # a 64-byte digest gives sixteen independent 32-bit draws


class Dice:
    """Sixteen independent uniform draws (slots 0..15) fixed by ``seed`` and ``parts``."""

    __slots__ = ("_digest",)

    def __init__(self, seed: int, *parts: str) -> None:
        material = "\x1f".join(parts).encode()
        self._digest = hashlib.blake2b(material, key=str(seed).encode(), digest_size=64).digest()

    def unit(self, slot: int) -> float:
        """A float in [0, 1) from one slot."""
        if not 0 <= slot < _SLOTS:
            raise IndexError(f"slot {slot} out of range 0..{_SLOTS - 1}")
        start = slot * _SLOT_BYTES
        return int.from_bytes(self._digest[start : start + _SLOT_BYTES], "big") / 2**32

    def below(self, slot: int, n: int) -> int:
        """An integer in [0, n)."""
        return int(self.unit(slot) * n)

    def chance(self, slot: int, probability: float) -> bool:
        """True with the given probability."""
        return self.unit(slot) < probability

    def pick(self, slot: int, options: Sequence[T]) -> T:
        """One of ``options``, uniformly."""
        return options[self.below(slot, len(options))]

    def weighted(self, slot: int, table: Sequence[tuple[T, float]]) -> T:
        """One value of ``table`` (``(value, weight)`` pairs), proportionally to its weight."""
        total = sum(weight for _, weight in table)
        point = self.unit(slot) * total
        for value, weight in table:
            point -= weight
            if point < 0:
                return value
        return table[-1][0]

    def big(self) -> int:
        """The first 128 bits as one integer, for identifiers drawn from a large space."""
        return int.from_bytes(self._digest[:16], "big")
