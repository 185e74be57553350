"""Tolerant readers of vendor JSON: unknown fields are ignored, missing or odd ones become ``None``.

Shared by the vendor modules; nothing else in the pipeline reads vendor JSON.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def blank_to_none(value: Any) -> str | None:
    """Melissa's ``" "`` (and any empty or missing value) as ``None``; other values trimmed text."""
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def codes_with_prefix(codes: Sequence[str], prefixes: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(code for code in codes if code.startswith(prefixes))


def flag(value: Any, *, missing: bool) -> bool:
    """A boolean that may arrive as bool, number or text; ``missing`` when absent or unreadable."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value != 0
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("true", "t", "yes", "y", "1"):
            return True
        if text in ("false", "f", "no", "n", "0"):
            return False
    return missing


def to_int(value: Any) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def to_float(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def leading_year(value: str | None) -> int | None:
    if value and len(value) >= 4 and value[:4].isdigit():
        return int(value[:4])
    return None


def as_mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
