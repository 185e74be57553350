"""Lead score rules (equity, LTV, owner occupancy, age 62+, property type, channels) and configurable weights."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import dagster as dg
import pytest
from pydantic import ValidationError

from equity_assets.campaign.assets import scored_leads
from equity_assets.campaign.scoring import ScoreWeights, score_leads

TODAY = date.today()
BASE = {
    "equity": 150_000, "ltv": 40, "owner_occupied": False, "property_type": "Single Family Residential",
    "email_verified": True, "phone_verified": False,
}


def born(years_ago: int, month_offset: int = 0) -> date:
    """First day of the month ``years_ago`` years (and ``month_offset`` months) before this month."""
    months = TODAY.year * 12 + TODAY.month - 1 - years_ago * 12 - month_offset
    return date(months // 12, months % 12 + 1, 1)


@pytest.fixture
def score(insert_leads, postgres):
    """``score(weights=None, **columns)``: the score SQL gives a lead with these columns."""

    def run(weights: ScoreWeights | None = None, **columns) -> Decimal:
        (lead_id,) = insert_leads([{**BASE, **columns}])
        with postgres.connection() as conn:
            score_leads(conn, [lead_id], weights or ScoreWeights())
            return conn.execute("SELECT lead_score FROM leads WHERE id = %s", (lead_id,)).fetchone()[0]

    return run


def test_an_ideal_hecm_lead_scores_100(score) -> None:
    assert score(equity=400_000, ltv=0, owner_occupied=True, owner_birth_month=born(70),
                 email_verified=True, phone_verified=True) == Decimal("100.00")


def test_a_lead_with_nothing_going_for_it_scores_0(score) -> None:
    assert score(equity=None, ltv=None, owner_occupied=None, owner_birth_month=born(40),
                 property_type="Residential-Vacant Land", email_verified=False, phone_verified=False) == 0


def test_62_plus_raises_the_score_and_unknown_age_sits_between(score) -> None:
    older, unknown, younger = score(owner_birth_month=born(63)), score(), score(owner_birth_month=born(50))
    assert older > unknown > younger
    assert older - younger == Decimal("20.00")  # the full age weight


def test_62_counts_from_the_end_of_the_birth_month(score) -> None:
    """Born in this month 62 years ago: 62 only once the month is over (the day is unknown)."""
    assert score(owner_birth_month=born(62, month_offset=1)) > score(owner_birth_month=born(62))


def test_owner_occupied_raises_the_score(score) -> None:
    assert score(owner_occupied=True) - score(owner_occupied=False) == Decimal("15.00")


def test_more_equity_and_lower_ltv_score_higher(score) -> None:
    assert score(equity=300_000) > score(equity=100_000) > score(equity=0)
    assert score(ltv=10) > score(ltv=60) > score(ltv=95) == score(ltv=80)


def test_property_types(score) -> None:
    single = score(property_type="Single Family Residential")
    assert score(property_type="Condominium") == single
    assert single > score(property_type="Duplex (2 units, any combination)") > score(property_type="Mobile/Manufactured Home")
    assert score(property_type="Mobile/Manufactured Home") > score(property_type="Multi-Family Dwellings (Generic, any combination 5+)")
    assert score(property_type="Residential-Vacant Land") == score(property_type="Multi-Family Dwellings (Generic, any combination 5+)")


def test_verified_channels_raise_the_score(score) -> None:
    assert score(email_verified=True, phone_verified=True) > score(email_verified=True) > score(email_verified=False)


def test_weights_are_configurable(score) -> None:
    only_age = ScoreWeights(equity=0, ltv=0, owner_occupied=0, age_62_plus=1, property_type=0, email=0, phone=0)
    assert score(only_age, owner_birth_month=born(70)) == Decimal("100.00")
    assert score(only_age, owner_birth_month=born(40)) == 0
    assert score(only_age) == Decimal("35.00")  # age_unknown_credit
    assert score(ScoreWeights(equity=0, ltv=0, owner_occupied=0, age_62_plus=0, property_type=0, email=0, phone=0)) == 0


def test_negative_weights_are_refused() -> None:
    with pytest.raises(ValidationError):
        ScoreWeights(age_62_plus=-1)


def test_scored_leads_takes_weights_from_run_config(candidates, insert_leads, run_verify, query) -> None:
    (home,) = candidates(1, lambda c: c.melissa.address_verified)
    insert_leads([home.lead(owner_occupied=True, equity=0, ltv=100, property_type="Residential-Vacant Land")])
    only_occupancy = {"equity": 0, "ltv": 0, "owner_occupied": 5, "age_62_plus": 0, "property_type": 0, "email": 0, "phone": 0}

    run_verify(score={"weights": only_occupancy})

    assert query("SELECT lead_score FROM leads") == [(Decimal("100.00"),)]


def test_rescoring_after_a_weight_change_calls_no_vendor(candidates, insert_leads, run_verify, query, postgres,
                                                         sandbox_control) -> None:
    (home,) = candidates(1, lambda c: c.melissa.address_verified)
    insert_leads([home.lead(owner_occupied=True, equity=0, ltv=100, property_type="Residential-Vacant Land")])
    run_verify()
    verified_at, first_score = query("SELECT verified_at, lead_score FROM leads")[0]
    vendor_calls = sandbox_control.stats()["requests"]
    only_occupancy = {"equity": 0, "ltv": 0, "owner_occupied": 5, "age_62_plus": 0, "property_type": 0, "email": 0, "phone": 0}

    result = dg.materialize([scored_leads], resources={"postgres": postgres},
                            run_config={"ops": {"scored_leads": {"config": {"weights": only_occupancy}}}})

    assert result.success
    assert first_score != Decimal("100.00")
    assert query("SELECT verified_at, lead_score FROM leads") == [(verified_at, Decimal("100.00"))]
    assert sandbox_control.stats()["requests"] == vendor_calls
    (materialization,) = result.asset_materializations_for_node("scored_leads")
    assert materialization.metadata["rescored"].value == 1
