"""Environment switching in one place: which resources the code location gets."""

from __future__ import annotations

from .db.resources import PostgresResource


def build_resources() -> dict[str, object]:
    """Resources for the current environment (`EQUITY_ENV`: local | production)."""
    return {"postgres": PostgresResource()}
