"""The sandbox's own address/phone/email normalization (decides which inputs are "the same")."""

from __future__ import annotations

import pytest

from equity_assets.sandbox.normalize import (
    is_plausible_email,
    normalize_address,
    normalize_phone,
    normalize_zip5,
)


@pytest.mark.parametrize(
    "line1, line2",
    [
        ("12 North Main Street, Apt 4", ""),
        ("12 n main st #4", ""),
        ("12 N. MAIN ST. APT#4", ""),
        ("12 N Main St", "Apartment 04"),
        ("12 N Main St", "4"),
    ],
)
def test_spelling_variants_normalize_to_one_key(line1: str, line2: str) -> None:
    address = normalize_address(line1, line2, "Derby", "Connecticut", "6418")
    assert address.unit_key == "12 N MAIN ST|DERBY|CT|#4"
    assert address.building_key == "12 N MAIN ST|DERBY|CT"


def test_zip_is_used_only_without_city_and_state() -> None:
    assert normalize_address("1 Elm St", "", "", "", "06418").locality == "06418"
    assert normalize_address("1 Elm St", "", "Derby", "CT", "").locality == "DERBY|CT"
    assert normalize_zip5("6418") == "06418" and normalize_zip5("92688-2112") == "92688" and normalize_zip5("12") == ""


def test_phone_and_email_rules() -> None:
    assert normalize_phone("+1 (949) 555-0100") == "9495550100"
    assert normalize_phone("555-0100") == "5550100"
    assert is_plausible_email("jane.doe+x@mail.example.com")
    assert not is_plausible_email("jane.doe@")
    assert not is_plausible_email("jane doe@example.com")
