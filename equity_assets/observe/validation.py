"""Validating what a stage wrote: a bounded sample of its rows, read back and checked with Pandera.

Each stage's asset check calls :func:`check_table_sample` with its `DataFrameModel` and a query that
selects the rows that run wrote (newest first, at most ``limit``). The result names every failing
column and check with a count and a few example values; values of personal columns (names,
emails, phones, addresses) are replaced by the row's key, so metadata never carries PII.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import dagster as dg
import pandas as pd
import pandera.errors
import pandera.pandas as pa
import psycopg

#: Rows read back per check: enough to catch a systematic fault, cheap on any table size.
SAMPLE_LIMIT: Final = 5_000
#: Example values kept per failing (column, check).
EXAMPLES: Final = 3

# Formats shared by the stage models (the database constraints say less than these).
STATE_CODE: Final = r"^[A-Z]{2}$"
ZIP5: Final = r"^\d{5}$"
E164: Final = r"^\+[1-9]\d{6,14}$"
# Deliverability is the verifier's call (bad syntax is an EE code): here only "one @, no blanks".
EMAIL: Final = r"^[^@\s]+@[^@\s]+$"
MAK: Final = r"^\d{10}$"

#: Columns whose values are personal: failures show the row key instead.
PERSONAL_COLUMNS: Final = frozenset({
    "email", "phone", "first_name", "last_name", "owner2_first_name", "owner2_last_name",
    "property_address", "mailing_address", "mailing_care_of",
})


def read_sample(conn: psycopg.Connection, query: Any, params: Mapping[str, Any], *, key: str) -> pd.DataFrame:
    """Rows of ``query`` (which must end with ``LIMIT %(limit)s``) as a frame indexed by ``key``."""
    cursor = conn.execute(query, {**params, "limit": SAMPLE_LIMIT})
    columns = [d.name for d in cursor.description or ()]
    frame = pd.DataFrame(cursor.fetchall(), columns=columns)
    return frame.set_index(frame[key].astype(str), drop=False)


def failures_of(model: type[pa.DataFrameModel], frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Every failing (column, check) with its count and a few examples; empty when the frame is valid."""
    try:
        model.validate(frame, lazy=True)
    except pandera.errors.SchemaErrors as exc:
        cases = exc.failure_cases
    else:
        return []
    # A row-level (dataframe) check reports every cell of a failing row: count it once per row.
    row_level = cases["schema_context"].astype(str) == "DataFrameSchema"
    columns = cases["column"].astype(str).where(~row_level, "(row)")
    summary = []
    for (column, check), group in cases.groupby([columns, cases["check"].astype(str)], sort=True):
        personal = column in PERSONAL_COLUMNS or column == "(row)"
        shown = group["index"] if personal else group["failure_case"]
        examples = [str(v) for v in pd.unique(shown.dropna().astype(str))[:EXAMPLES]]
        count = group["index"].nunique() if column == "(row)" else len(group)
        summary.append({"column": column, "check": check, "count": count,
                        "examples" if not personal else "example_rows": examples})
    return summary


def check_table_sample(
    conn: psycopg.Connection,
    model: type[pa.DataFrameModel],
    query: Any,
    params: Mapping[str, Any] | None = None,
    *,
    key: str,
    warn_only: frozenset[str] = frozenset(),
) -> dg.AssetCheckResult:
    """Validate the sample ``query`` selects against ``model``; the check result for the UI.

    Failures of the checks named in ``warn_only`` alone give a WARN result (shown, not blocking):
    for known faults whose rows are caught further on.
    """
    frame = read_sample(conn, query, params or {}, key=key)
    failures = failures_of(model, frame)
    severity = (
        dg.AssetCheckSeverity.WARN
        if failures and all(f["check"] in warn_only for f in failures)
        else dg.AssetCheckSeverity.ERROR
    )
    metadata: dict[str, Any] = {
        "rows_checked": len(frame),
        "sample_limit": SAMPLE_LIMIT,
        "failed_checks": len(failures),
        "schema": model.__name__,
    }
    if failures:
        metadata["failures"] = dg.MetadataValue.json(failures)
    description = "; ".join(
        f"{f['column']}: {f['check']} failed on {f['count']} row(s), e.g. {f.get('examples') or f.get('example_rows')}"
        for f in failures[:5]
    )
    return dg.AssetCheckResult(passed=not failures, severity=severity, metadata=metadata,
                               description=description or None)
