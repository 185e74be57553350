"""Vectorized normalization: ZIPs, states, money, dates, contacts, units and the address hash."""

from __future__ import annotations

import hashlib
import random

import numpy as np
import pandas as pd
import pytest
import usaddress

from equity_assets.ingest import contacts
from equity_assets.ingest import normalize as N


def series(*values: object) -> pd.Series:
    """An object Series, as a hand-made CSV column would look before normalization."""
    return pd.Series(list(values), dtype=object)


def as_list(result: pd.Series) -> list[object]:
    """Values with NA as None, for plain comparisons."""
    return [None if pd.api.types.is_scalar(v) and pd.isna(v) else v for v in result.tolist()]


def addr_hash(address: str, unit: str | None = None, city: str | None = "Derby",
              state: str = "CT", zip_code: str | None = "06418") -> str:
    """addr_hash of one row, normalizing state and ZIP the way the parser does."""
    result = N.address_hash(
        series(address), series(unit), series(city),
        N.normalize_state(series(state)), N.normalize_zip(series(zip_code)),
    )
    return result.iloc[0]


# --- ZIP, state, county, APN --------------------------------------------------------------------
def test_zip_restores_lost_leading_zeros_and_cuts_plus4() -> None:
    result = N.normalize_zip(series("6418", "06418", "06418-1234", "064181234", "6418-1234", "501", "6418.0", " 90210 "))
    assert as_list(result) == ["06418", "06418", "06418", "06418", "06418", "00501", "06418", "90210"]


def test_zip_keeps_unreadable_values_for_the_schema_and_blank_is_null() -> None:
    assert as_list(N.normalize_zip(series("ABCDE", "12", "", None))) == ["ABCDE", "12", None, None]


def test_state_codes_and_full_names_become_upper_two_letters() -> None:
    result = N.normalize_state(series("ct", " Connecticut ", "new york", "N.Y.", "Tx"))
    assert as_list(result) == ["CT", "CT", "NY", "NY", "TX"]


def test_unknown_state_is_kept_visible_not_guessed() -> None:
    assert as_list(N.normalize_state(series("Connecticutt", "xx"))) == ["CONNECTICUTT", "XX"]


def test_county_is_upper_case_without_trailing_county() -> None:
    result = N.normalize_county(series("New Haven County", "  new  haven ", "Countyline", ""))
    assert as_list(result) == ["NEW HAVEN", "NEW HAVEN", "COUNTYLINE", None]


def test_apn_with_spaces_and_colons_survives_trimmed_and_uppercased() -> None:
    result = N.normalize_apn(series("DERB M:11 B:4 L:45", " derb  m:11 b:4\tl:45 ", "012-345-678", ""))
    assert as_list(result) == ["DERB M:11 B:4 L:45", "DERB M:11 B:4 L:45", "012-345-678", None]


# --- typed values -------------------------------------------------------------------------------
def test_money_accepts_dollars_commas_plain_ints_and_blanks() -> None:
    parsed = N.parse_money(series("$1,234", "250000", "1234.50", "(12)", "", None, "abc"))
    assert as_list(parsed.values) == [1234.0, 250000.0, 1234.5, -12.0, None, None, None]
    assert parsed.invalid.tolist() == [False, False, False, False, False, False, True]


def test_money_fast_path_for_plain_digits() -> None:
    parsed = N.parse_money(series("1", "22", None))
    assert as_list(parsed.values) == [1.0, 22.0, None]
    assert not parsed.invalid.any()


def test_percent_with_or_without_sign() -> None:
    parsed = N.parse_percent(series("22.22", "22.22%", "0", "x%"))
    assert as_list(parsed.values) == [22.22, 22.22, 0.0, None]
    assert parsed.invalid.tolist() == [False, False, False, True]


def test_integers_reject_fractions_text_and_out_of_int4_range() -> None:
    parsed = N.parse_int(series("3", "1,234", "3.0", "3.5", "three", "3000000000", ""))
    assert as_list(parsed.values) == [3, 1234, 3, None, None, None, None]
    assert parsed.invalid.tolist() == [False, False, False, True, True, True, False]


def test_booleans_in_the_usual_spellings() -> None:
    parsed = N.parse_bool(series("Yes", "no", "Y", "n", "TRUE", "false", "1", "0", "", "maybe"))
    assert as_list(parsed.values) == [True, False, True, False, True, False, True, False, None, None]
    assert parsed.invalid.tolist() == [False] * 9 + [True]


def test_dates_in_both_formats_and_impossible_dates_are_invalid() -> None:
    parsed = N.parse_date(series("2024-01-05", "01/05/2024", "1/5/2024", "02/29/2024",
                                 "02/29/2023", "2024-02-30", "13/01/2020", "05-01-2024", "", "1066-10-14"))
    expected = [pd.Timestamp("2024-01-05")] * 3 + [pd.Timestamp("2024-02-29")] + [None] * 6
    assert as_list(parsed.values) == expected
    assert parsed.invalid.tolist() == [False] * 4 + [True] * 4 + [False, True]


def test_marketing_lists_split_into_trimmed_items() -> None:
    result = N.split_list(series("High Equity, Absentee Owner", "Vacant", " ; ", None))
    assert as_list(result)[:2] == [["High Equity", "Absentee Owner"], ["Vacant"]]
    assert as_list(result)[2:] == [None, None]


# --- free text is data --------------------------------------------------------------------------
NAUGHTY = [
    "=cmd|' /C calc'!A0", "@SUM(1+1)*cmd|' /C calc'!A0", "+1+1", "-2+3", "=1+1", "\t=1+1", "\r=1+1",
    "Robert'); DROP TABLE leads;--", "' OR '1'='1", "\u202etxt.exe", "zero\u200bwidth", "null", "None",
    "NULL", "undefined", "\\N", "\\.", 'quote " inside', "comma, inside", "new\nline", "back\\slash",
    "{brace}", "Peña Núñez", "日本語", "😀",
]


def test_naughty_and_formula_strings_are_kept_literally() -> None:
    assert as_list(N.clean_text(series(*NAUGHTY))) == NAUGHTY


def test_clean_text_trims_only_spaces_and_blank_becomes_null() -> None:
    assert as_list(N.clean_text(series("  Smith  ", "", "   ", "\tTab"))) == ["Smith", None, None, "\tTab"]


# --- phones and e-mail --------------------------------------------------------------------------
def test_phones_to_e164_and_invalid_flagged() -> None:
    parsed = N.normalize_phone(series("(203) 555-1234", "203.555.1234", "+1 203 555 1234", "1-203-555-1234",
                                      "203-555-1234 x12", "555-1234", "call me", "123-456-7890", ""))
    assert as_list(parsed.values) == ["+12035551234"] * 5 + [None] * 4
    assert parsed.invalid.tolist() == [False] * 5 + [True, True, True, False]


def test_phone_fast_path_agrees_with_phonenumbers() -> None:
    rng = random.Random(7)
    numbers = [f"{rng.randrange(10**9, 10**10):010d}" for _ in range(1500)]
    fast = as_list(N.normalize_phone(series(*numbers)).values)
    slow = [contacts._phone_via_library(number) for number in numbers]
    assert fast == slow
    assert any(slow) and not all(slow)  # the sample holds both valid and invalid numbers


def test_emails_lowercased_and_invalid_flagged() -> None:
    parsed = N.normalize_email(series("John.Smith@Example.COM", " a+b@gmail.com ", "bad@", "x@localhost",
                                      "a..b@x.com", "no-at-sign", ""))
    assert as_list(parsed.values) == ["john.smith@example.com", "a+b@gmail.com", None, None, None, None, None]
    assert parsed.invalid.tolist() == [False, False, True, True, True, True, False]


def test_email_fast_path_agrees_with_email_validator() -> None:
    locals_ = ["a", "john.smith", "o'brien", "x_y-z", "a" * 64, "a" * 65, "j..s", ".j", "é"]
    domains = ["gmail.com", "sub.domain.co.uk", "localhost", "x.test", "-bad.com", "x.123", "xn--bcher-kva.ch"]
    emails = [f"{local}@{domain}" for local in locals_ for domain in domains]
    fast = as_list(N.normalize_email(series(*emails)).values)
    slow = [contacts._email_via_library(e) for e in emails]
    assert fast == slow


def test_contacts_primary_then_distinct_others_in_slot_order() -> None:
    primary, others = N.collect_contacts([series(None, "a", "b"), series("c", "a", None), series("d", "e", "b")])
    assert as_list(primary) == ["c", "a", "b"]
    assert as_list(others) == [["d"], ["e"], None]


# --- units and addresses ------------------------------------------------------------------------
def test_unit_designators_unify() -> None:
    result = N.normalize_unit(series("Apt 4", "#4", "Unit 4", "Ste 4", "APT. 4", "apt #4", "# 4", "4", "04",
                                     "Apt 4-B", "4B", "Rear", "Basement", "Apt", None))
    assert as_list(result) == ["4"] * 9 + ["4B", "4B", "REAR", "BSMT", None, None]


def test_street_suffixes_directionals_and_inline_units() -> None:
    parts = N.normalize_street(series("123 North Main Street Apt 4", "123 n. main st., #4", "  123  N  MAIN ST  UNIT4 ",
                                      "9 Saint Andrews Avenue", "9 St. Andrews Ave", "5 Middlesex Ave 25",
                                      "1200 US Highway 1", "123 Main St Rear"))
    assert as_list(parts.street) == ["123 N MAIN ST"] * 3 + ["9 ST ANDREWS AVE"] * 2 + [
        "5 MIDDLESEX AVE", "1200 US HWY 1", "123 MAIN ST"]
    assert as_list(parts.unit) == ["4", "4", "4", None, None, "25", None, "REAR"]


@pytest.mark.parametrize(
    ("variant", "unit", "zip_code"),
    [
        ("123 N Main St", "Apt 4", "06418"),
        ("123 North Main Street", "#4", "06418"),
        ("123 N MAIN ST", "Unit 4", "6418"),
        ("123 n main st", "Ste 4", "06418-1234"),
        ("123 N. Main St.", "APT. 4", "6418"),
        ("  123  N   Main  St ", "4", "06418"),
        ("123 N Main St Apt 4", None, "06418"),
        ("123 N Main St, #4", None, "6418"),
        ("123 N Main St Unit 4", "", "064181234"),
    ],
)
def test_duplicate_spellings_share_an_address_hash(variant: str, unit: str | None, zip_code: str) -> None:
    assert addr_hash(variant, unit, zip_code=zip_code) == addr_hash("123 N Main St", "4")


@pytest.mark.parametrize(
    ("address", "unit", "zip_code"),
    [
        ("124 N Main St", "4", "06418"),  # another house
        ("123 N Main St", "5", "06418"),  # another unit
        ("123 N Main St", None, "06418"),  # the building, not the unit
        ("123 S Main St", "4", "06418"),  # another directional
        ("123 N Main Ave", "4", "06418"),  # another street type
        ("123 N Maine St", "4", "06418"),  # another street
        ("123 N Main St", "4", "06419"),  # another ZIP
    ],
)
def test_different_addresses_get_different_hashes(address: str, unit: str | None, zip_code: str) -> None:
    assert addr_hash(address, unit, zip_code=zip_code) != addr_hash("123 N Main St", "4")


def test_address_hash_definition_is_sha256_of_street_unit_zip() -> None:
    expected = hashlib.sha256("123 N MAIN ST|4|06418".encode()).hexdigest()
    assert addr_hash("123 North Main Street", "Apt 4", zip_code="6418") == expected
    no_unit = hashlib.sha256("123 N MAIN ST||06418".encode()).hexdigest()
    assert addr_hash("123 N Main St", None) == no_unit


def test_address_hash_falls_back_to_city_and_state_without_zip() -> None:
    expected = hashlib.sha256("123 N MAIN ST|4|DERBY|CT".encode()).hexdigest()
    assert addr_hash("123 N Main St", "4", city="Derby", state="Connecticut", zip_code=None) == expected
    assert pd.isna(addr_hash("123 N Main St", "4", city=None, zip_code=None))


def test_accents_fold_so_encodings_and_keyboards_agree() -> None:
    assert addr_hash("12 Peña St") == addr_hash("12 PENA STREET")


def test_unusual_lines_go_through_usaddress_without_crashing() -> None:
    with pytest.raises(usaddress.RepeatedLabelError):
        usaddress.tag("PO Box 1 PO Box 2")
    parts = N.normalize_street(series("PO Box 1 PO Box 2", "PO Box 12", "123 Main St, Derby, CT 06418",
                                      "=cmd|' /C calc'!A0", "1 2 3 4 5 6", ""))
    streets = as_list(parts.street)
    assert streets[0] == "PO BOX 1 PO BOX 2"  # usaddress gave up: the simple string is kept
    assert streets[1] == "PO BOX 12"
    assert streets[2] == "123 MAIN ST"  # the city, state and ZIP inside the line are not the street
    assert streets[3] and streets[4]
    assert streets[5] is None


def test_one_line_address_hashes_like_the_split_columns() -> None:
    assert addr_hash("123 Main St, Derby, CT 06418") == addr_hash("123 Main St")


def test_address_hash_of_many_rows_matches_row_by_row() -> None:
    addresses = [f"{n} Oak Street" for n in range(1, 400)]
    bulk = N.address_hash(series(*addresses), series(*([None] * 399)), series(*(["Derby"] * 399)),
                          N.normalize_state(series(*(["CT"] * 399))), N.normalize_zip(series(*(["6418"] * 399))))
    assert bulk.nunique() == 399
    assert bulk.iloc[41] == addr_hash("42 Oak St")
    assert np.all(bulk.str.len() == 64)


def test_zip_repair_pads_only_zero_led_states():
    zips, bad = N.repair_zip(series("6100", "6103", "601", "601", "62701-1234", "6418", None),
                             series("IL", "CT", "PR", "TX", "IL", None, "CT"))
    assert as_list(zips) == [None, "06103", "00601", None, "62701", None, None]
    assert bad.tolist() == [True, False, False, True, False, True, False]


def test_address_identity_parts_and_locality_from_one_cell():
    import pyarrow as pa

    line = N.parse_address_line(pa.array(["7946 South Ashland Avenue Apt 2", "27 Washington\nOak Park IL 60302",
                                          "3845 Quail Hollow", "12 N Main St W"]))
    assert line.city.to_pylist() == [None, "Oak Park", None, None]
    assert line.state.to_pylist() == [None, "IL", None, None] and line.zip.to_pylist() == [None, "60302", None, None]
    ident = N.address_identity(line, pa.nulls(4, pa.string()), pa.array(["Chicago", "Oak Park", None, "Chicago"]),
                               pa.array(["IL", "IL", "MA", "IL"]), pa.array(["60620", "60302", None, None]))
    assert ident.std.to_pylist() == ["7946 S ASHLAND AVE|2", "27 WASHINGTON|", "3845 QUAIL HOLW|", "12 N MAIN ST W|"]
    assert ident.bare.to_pylist() == ["7946 S ASHLAND|2", "27 WASHINGTON|", "3845 QUAIL|", "12 N MAIN W|"]
    hashes = ident.hash.to_pylist()
    assert hashes[0] == N.sha256_hex(series("7946 S ASHLAND AVE|2|60620"))[0]
    assert hashes[2] is None  # no ZIP and no city: no key
    assert hashes[3] == N.sha256_hex(series("12 N MAIN ST W||CHICAGO|IL"))[0]
