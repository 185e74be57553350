"""Lead score, 0-100: how worth a broker's time a lead is for a reverse mortgage (HECM).

Formula. Each factor ``c_i`` is in [0, 1]; the score is the weighted mean, scaled to 100::

    score = round(100 * sum(w_i * c_i) / sum(w_i), 2)        (0 when every weight is 0)

    equity          min(max(equity, 0) / equity_full_at, 1)           equity (or value - balance) in $
    ltv             1 - min(max(ltv, 0) / ltv_zero_at, 1)             unknown LTV -> 0
    owner_occupied  1 if owner-occupied (HECM: primary residence), else 0
    age_62_plus     1 if the owner is 62+ today, 0 if known to be younger,
                    age_unknown_credit when the birth month is unknown
    property_type   1 single family / townhouse / condominium, 0.7 two to four units,
                    0.4 mobile or manufactured home, 0 vacant land or 5+ units,
                    other_type_credit for other types, type_unknown_credit when unknown
    email           1 if the lead's email is verified and usable, else 0
    phone           1 if the lead's phone is verified and usable, else 0

"62+ today" uses the last day of the birth month, so nobody is counted 62 a few weeks early.
Default weights (sum 100): equity 20, ltv 10, owner_occupied 15, age_62_plus 20,
property_type 10, email 15, phone 10. Weights are run config (:class:`ScoreWeights`).

The score is computed in SQL, set-based, from the lead's own columns: :func:`score_sql` is an
expression over a relation with the `leads` column names; :func:`score_verified_leads` (the
`scored_leads` asset) re-scores every verified lead whose score changed, :func:`score_leads`
re-scores given leads.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dagster as dg
import psycopg
from psycopg import sql
from pydantic import Field


class ScoreWeights(dg.Config):
    """Weights and thresholds of the lead score (see the module docstring for the formula)."""

    equity: float = Field(default=20.0, ge=0, description="Weight of home equity.")
    ltv: float = Field(default=10.0, ge=0, description="Weight of a low loan-to-value.")
    owner_occupied: float = Field(default=15.0, ge=0, description="Weight of owner occupancy (primary residence).")
    age_62_plus: float = Field(default=20.0, ge=0, description="Weight of the owner being 62 or older.")
    property_type: float = Field(default=10.0, ge=0, description="Weight of a HECM-friendly property type.")
    email: float = Field(default=15.0, ge=0, description="Weight of a verified, usable email.")
    phone: float = Field(default=10.0, ge=0, description="Weight of a verified, usable phone.")
    equity_full_at: float = Field(default=300_000.0, gt=0, description="Equity ($) that earns the full equity factor.")
    ltv_zero_at: float = Field(default=80.0, gt=0, description="LTV (%) at and above which the LTV factor is 0.")
    age_unknown_credit: float = Field(default=0.35, ge=0, le=1, description="Age factor when the birth month is unknown.")
    type_unknown_credit: float = Field(default=0.5, ge=0, le=1, description="Property-type factor when the type is unknown.")
    other_type_credit: float = Field(default=0.3, ge=0, le=1, description="Property-type factor for unlisted types.")

    def params(self) -> dict[str, float]:
        """Named SQL parameters of :func:`score_sql` (prefixed so they cannot clash)."""
        return {f"score_{name}": float(value) for name, value in self.model_dump().items()}


def score_sql(alias: str | None = None) -> sql.Composable:
    """The score expression over ``alias``'s `leads`-named columns; parameters from :meth:`ScoreWeights.params`.

    ``equity, estimated_value, loan_balance, ltv, owner_occupied, owner_birth_month,
    property_type, email_verified, phone_verified`` must be readable under ``alias``.
    """

    def col(name: str) -> sql.Composable:
        return sql.SQL("{}.{}").format(sql.Identifier(alias), sql.Identifier(name)) if alias else sql.Identifier(name)

    def p(name: str) -> sql.Composable:
        return sql.SQL("%({})s::float8").format(sql.SQL("score_" + name))

    equity = sql.SQL("coalesce({eq}, {value} - coalesce({bal}, 0))::float8").format(
        eq=col("equity"), value=col("estimated_value"), bal=col("loan_balance")
    )
    factors = {
        "equity": sql.SQL("CASE WHEN {e} IS NULL THEN 0 ELSE least(greatest({e}, 0) / {full}, 1) END").format(
            e=equity, full=p("equity_full_at")
        ),
        # greatest()/least() skip NULLs, so an unknown value is caught before them
        "ltv": sql.SQL("CASE WHEN {ltv} IS NULL THEN 0 ELSE 1 - least(greatest({ltv}::float8, 0) / {zero}, 1) END").format(
            ltv=col("ltv"), zero=p("ltv_zero_at")
        ),
        "owner_occupied": sql.SQL("CASE WHEN {oo} THEN 1 ELSE 0 END").format(oo=col("owner_occupied")),
        "age_62_plus": sql.SQL(
            "CASE WHEN {b} IS NULL THEN {unknown}"
            " WHEN ({b} + interval '1 month' - interval '1 day' + interval '62 years')::date <= current_date THEN 1"
            " ELSE 0 END"
        ).format(b=col("owner_birth_month"), unknown=p("age_unknown_credit")),
        "property_type": _property_type_factor(col("property_type"), p),
        "email": sql.SQL("CASE WHEN {v} THEN 1 ELSE 0 END").format(v=col("email_verified")),
        "phone": sql.SQL("CASE WHEN {v} THEN 1 ELSE 0 END").format(v=col("phone_verified")),
    }
    weighted = sql.SQL(" + ").join(sql.SQL("{w} * ({f})").format(w=p(name), f=f) for name, f in factors.items())
    total = sql.SQL(" + ").join(p(name) for name in factors)
    return sql.SQL("coalesce(round((100 * ({weighted}) / nullif({total}, 0))::numeric, 2), 0)").format(
        weighted=weighted, total=total
    )


def _property_type_factor(column: sql.Composable, p: Any) -> sql.Composable:
    """HECM eligibility by property type; PropStream spells types out (``Duplex (2 units, ...)``)."""
    return sql.SQL(
        "CASE WHEN {t} IS NULL OR btrim({t}) = '' THEN {unknown}"
        " WHEN {t} ~* '(vacant|land|lot\\M|5\\+|commercial|industrial|agricult)' THEN 0"
        " WHEN {t} ~* '(single family|townhouse|town home|condo|pud|planned unit)' THEN 1"
        " WHEN {t} ~* '(duplex|triplex|quadruplex|fourplex|2-4|2 units|3 units|4 units)' THEN 0.7"
        " WHEN {t} ~* '(mobile|manufactured)' THEN 0.4"
        " ELSE {other} END"
    ).format(t=column, unknown=p("type_unknown_credit"), other=p("other_type_credit"))


def score_leads(conn: psycopg.Connection, lead_ids: Sequence[str], weights: ScoreWeights) -> int:
    """Re-score ``lead_ids`` from their current columns; returns how many rows were updated."""
    if not lead_ids:
        return 0
    statement = sql.SQL("UPDATE leads SET lead_score = {score} WHERE id = ANY(%(ids)s::uuid[])").format(
        score=score_sql()
    )
    return conn.execute(statement, {**weights.params(), "ids": list(lead_ids)}).rowcount


def score_verified_leads(conn: psycopg.Connection, weights: ScoreWeights) -> tuple[int, int]:
    """Re-score every verified lead; only rows whose score changes are written.

    Returns (verified leads, leads whose score changed). Age depends on today's date, so a daily
    run also moves leads across their 62nd birthday.
    """
    statement = sql.SQL(
        "WITH s AS (SELECT id, {score} AS score FROM leads l WHERE l.verified_at IS NOT NULL)"
        " UPDATE leads l SET lead_score = s.score FROM s"
        " WHERE l.id = s.id AND l.lead_score IS DISTINCT FROM s.score"
    ).format(score=score_sql("l"))
    changed = conn.execute(statement, weights.params()).rowcount
    verified = conn.execute("SELECT count(*) FROM leads WHERE verified_at IS NOT NULL").fetchone()[0]
    return verified, changed
