"""Lead score rules (equity, LTV, owner occupancy, age 62+, property type, channels) and configurable weights."""

from __future__ import annotations

from datetime import date, timedelta
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
    """Born in this month 62 years ago: 62 only on the month's last day (the birth day is unknown;
    by then it has passed whichever it was); born the month before: 62 already."""
    last_day_of_month = (TODAY + timedelta(days=1)).month != TODAY.month
    earlier, this_month = score(owner_birth_month=born(62, month_offset=1)), score(owner_birth_month=born(62))
    assert this_month == earlier if last_day_of_month else this_month < earlier


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


# Pins of the formula, worked out by hand with the default weights (equity 20, ltv 10,
# owner_occupied 15, age_62_plus 20, property_type 10, email 15, phone 10; sum 100):
HAND_COMPUTED = [
    # 150k/300k*20 = 10; (1 - 40/80)*10 = 5; not occupied 0; age unknown .35*20 = 7; single family 10;
    # email 15; phone 0  ->  47
    ({}, "47.00"),
    # equity from value - balance: 250k - 100k = 150k -> 10; (1 - 20/80)*10 = 7.5; occupied 15; 70 years 20;
    # duplex .7*10 = 7; email 0; phone 10  ->  69.5
    ({"equity": None, "estimated_value": 250_000, "loan_balance": 100_000, "ltv": 20, "owner_occupied": True,
      "owner_birth_month": born(70), "property_type": "Duplex (2 units, any combination)",
      "email_verified": False, "phone_verified": True}, "69.50"),
    # 37.5k -> 2.5; LTV 100 -> 0; not occupied 0; 40 years 0; mobile home .4*10 = 4; email 15; phone 10  ->  31.5
    ({"equity": 37_500, "ltv": 100, "owner_birth_month": born(40), "property_type": "Mobile/Manufactured Home",
      "phone_verified": True}, "31.50"),
    # negative equity 0; unknown LTV 0; unknown occupancy 0; age unknown 7; unlisted type .3*10 = 3;
    # no channel  ->  10
    ({"equity": -5_000, "ltv": None, "owner_occupied": None, "property_type": "Houseboat",
      "email_verified": False}, "10.00"),
    # 100k -> 20/3 = 6.667; LTV 0 -> 10; occupied 15; 65 years 20; condo 10; email 15; phone 0
    # -> 76.667, rounded to 2 places
    ({"equity": 100_000, "ltv": 0, "owner_occupied": True, "owner_birth_month": born(65),
      "property_type": "Condominium"}, "76.67"),
]


@pytest.mark.parametrize(("columns", "expected"), HAND_COMPUTED)
def test_scores_match_hand_computed_values(score, columns, expected) -> None:
    assert score(**columns) == Decimal(expected)


def test_weights_and_thresholds_enter_the_formula_as_documented(score) -> None:
    weights = ScoreWeights(equity=3, ltv=1, owner_occupied=0, age_62_plus=0, property_type=0, email=0, phone=0,
                           equity_full_at=200_000, ltv_zero_at=50)
    # 100 * (3 * 50k/200k + 1 * (1 - 10/50)) / (3 + 1) = 100 * (0.75 + 0.8) / 4 = 38.75
    assert score(weights, equity=50_000, ltv=10) == Decimal("38.75")


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
