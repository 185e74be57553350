"""The sandbox's Melissa Personator endpoint speaks the documented wire format, deterministically."""

from __future__ import annotations

from collections import Counter
from typing import Any

import requests

from equity_assets.sandbox import SandboxConfig

PATH = "/v3/WEB/ContactVerify/doContactVerify"
LICENSE = SandboxConfig().melissa_license_key
STREETS = ("Main St", "Oak Avenue", "Pine Road", "Maple Dr", "Cedar Lane", "Elm Street", "Lakeview Blvd", "Hill Ct")
CITIES = (("Mission Viejo", "CA", "92688"), ("Springfield", "IL", "62704"), ("Derby", "CT", "06418"), ("Austin", "TX", "78701"))


def post_personator(url: str, records: list[dict[str, str]], *, license_key: str | None = LICENSE, columns: str = "") -> dict[str, Any]:
    payload: dict[str, Any] = {"TransmissionReference": "t-1", "Actions": "Check,Verify", "Columns": columns, "Records": records}
    if license_key is not None:
        payload["CustomerID"] = license_key
    response = requests.post(url + PATH, json=payload, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def synthetic_records(count: int, *, offset: int = 0) -> list[dict[str, str]]:
    """Distinct, plausible contacts; every 50th email is syntactically broken."""
    records = []
    for n in range(offset, offset + count):
        city, state, zip5 = CITIES[n % len(CITIES)]
        records.append(
            {
                "RecordID": str(n),
                "AddressLine1": f"{100 + n} {STREETS[n % len(STREETS)]}",
                "City": city,
                "State": state,
                "PostalCode": zip5,
                "EmailAddress": f"owner{n}@example.com" if n % 50 else f"owner{n}-at-example.com",
                "PhoneNumber": f"({200 + n % 700}) 555-{n % 10000:04d}",
                "FullName": f"Pat Owner{n}",
            }
        )
    return records


def in_batches(url: str, records: list[dict[str, str]], **kwargs: Any) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    for start in range(0, len(records), 100):
        out.extend(post_personator(url, records[start : start + 100], **kwargs)["Records"])
    return out


def test_response_envelope_values_are_strings_and_blanks_are_a_space(sandbox_url: str) -> None:
    records = synthetic_records(5) + [{"RecordID": "empty"}]
    body = post_personator(sandbox_url, records)
    assert body["TotalRecords"] == "6"
    assert body["TransmissionResults"] == " "
    assert body["TransmissionReference"] == "t-1"
    assert [r["RecordID"] for r in body["Records"]] == [r["RecordID"] for r in records]
    for record in body["Records"]:
        for key, value in record.items():
            assert isinstance(value, str), key
            assert value != "", f"{key} is empty instead of a single space"
    empty = body["Records"][-1]
    assert empty["MelissaAddressKey"] == " " and empty["EmailAddress"] == " " and empty["PhoneNumber"] == " "
    first = body["Records"][0]
    assert first["Results"] == ",".join(sorted(first["Results"].split(",")))


def test_more_than_100_records_is_ge03_with_no_records(sandbox_url: str) -> None:
    body = post_personator(sandbox_url, synthetic_records(101))
    assert body["TransmissionResults"] == "GE03"
    assert body["Records"] == [] and body["TotalRecords"] == "0"


def test_license_errors(sandbox_url: str) -> None:
    assert post_personator(sandbox_url, synthetic_records(1), license_key="wrong")["TransmissionResults"] == "GE05"
    missing = post_personator(sandbox_url, synthetic_records(1), license_key=None)
    assert missing["TransmissionResults"] == "GE04" and missing["Records"] == []


def test_malformed_json_is_http_400_problem_details(sandbox_url: str) -> None:
    response = requests.post(sandbox_url + PATH, data=b'{"Records": [', headers={"Content-Type": "application/json"}, timeout=10)
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["status"] == 400 and problem["title"] and problem["detail"]


def test_date_of_birth_only_when_demographics_requested(sandbox_url: str) -> None:
    plain = post_personator(sandbox_url, synthetic_records(20))["Records"]
    assert all("DateOfBirth" not in r for r in plain)
    rich = post_personator(sandbox_url, synthetic_records(20), columns="GrpAddressDetails,GrpDemographicBasic")["Records"]
    dobs = [r["DateOfBirth"] for r in rich if r["DateOfBirth"] != " "]
    assert len(dobs) >= 10
    assert all(len(d) == 6 and d.isdigit() and 1 <= int(d[4:]) <= 12 for d in dobs)


def test_same_input_same_answer(sandbox_url: str) -> None:
    records = synthetic_records(100)
    assert post_personator(sandbox_url, records) == post_personator(sandbox_url, records)
    # Batching does not matter: a record alone gets the answer it got inside a batch.
    alone = post_personator(sandbox_url, [records[37]])["Records"][0]
    assert alone == post_personator(sandbox_url, records)["Records"][37]


def test_address_spelling_variants_share_one_mak(sandbox_url: str) -> None:
    variants = [
        {"AddressLine1": "{n} Lakeview Boulevard, Apt 4", "City": "Mission Viejo", "State": "California", "PostalCode": "92688"},
        {"AddressLine1": "{n}  lakeview blvd #4", "City": "MISSION  VIEJO", "State": "ca", "PostalCode": "92688-2112"},
        {"AddressLine1": "{n} LAKEVIEW BLVD", "AddressLine2": "Apt. 04", "City": "mission viejo", "State": "CA"},
    ]
    verified = 0
    for n in range(1, 31):
        answers = [
            post_personator(sandbox_url, [{**{k: v.format(n=n) for k, v in variant.items()}, "RecordID": "1"}])["Records"][0]
            for variant in variants
        ]
        assert len({a["MelissaAddressKey"] for a in answers}) == 1, answers
        assert len({a["MelissaAddressKeyBase"] for a in answers}) == 1
        mak = answers[0]["MelissaAddressKey"]
        if mak != " ":
            verified += 1
            assert len(mak) == 10 and mak.isdigit()
    assert verified >= 20


def test_unit_mak_differs_from_building_mak_which_is_its_base(sandbox_url: str) -> None:
    checked = 0
    for n in range(1, 40):
        with_unit, building = post_personator(
            sandbox_url,
            [
                {"RecordID": "u", "AddressLine1": f"{n} Oak Avenue Apt 7", "City": "Austin", "State": "TX", "PostalCode": "78701"},
                {"RecordID": "b", "AddressLine1": f"{n} Oak Avenue", "City": "Austin", "State": "TX", "PostalCode": "78701"},
            ],
        )["Records"]
        if "AS01" in with_unit["Results"].split(",") and building["MelissaAddressKey"] != " ":
            checked += 1
            assert with_unit["MelissaAddressKey"] != building["MelissaAddressKey"]
            assert with_unit["MelissaAddressKeyBase"] == building["MelissaAddressKey"]
    assert checked >= 10


def test_different_addresses_get_different_maks(sandbox_url: str) -> None:
    out = in_batches(sandbox_url, synthetic_records(1000))
    maks = [r["MelissaAddressKey"] for r in out if r["MelissaAddressKey"] != " "]
    assert len(maks) > 800
    assert len(set(maks)) == len(maks)
    keys = [r["AddressKey"] for r in out if r["AddressKey"] != " "]
    assert all(len(k) == 11 and k.isdigit() for k in keys)


def test_outcomes_depend_on_the_seed(start_sandbox) -> None:
    records = synthetic_records(50)
    same_a = post_personator(start_sandbox(SandboxConfig(seed=7)), records)
    same_b = post_personator(start_sandbox(SandboxConfig(seed=7)), records)
    other = post_personator(start_sandbox(SandboxConfig(seed=8)), records)
    assert same_a == same_b  # across restarts
    assert [r["MelissaAddressKey"] for r in other["Records"]] != [r["MelissaAddressKey"] for r in same_a["Records"]]


def test_result_code_proportions_are_realistic(sandbox_url: str) -> None:
    out = in_batches(sandbox_url, synthetic_records(2000))
    codes = Counter(code for record in out for code in record["Results"].split(","))
    share = {code: count / len(out) for code, count in codes.items()}
    # Addresses: most fully verified, some building-only, non-USPS, unknown street, multiple match.
    assert 0.70 <= share["AS01"] <= 0.90
    assert 0.03 <= share["AS02"] <= 0.12
    assert 0.01 <= share["AS03"] <= 0.06
    assert 0.03 <= share["AE02"] <= 0.10
    assert 0.015 <= share["AE05"] <= 0.07
    # Phones: valid and typed as cell or landline, a few invalid.
    assert share["PS01"] >= 0.85
    assert 0.48 <= share["PS07"] <= 0.68 and 0.26 <= share["PS08"] <= 0.46
    assert 0.02 <= share.get("PE01", 0) + share.get("PE05", 0) <= 0.12
    # Emails: mostly valid; every other outcome appears; broken syntax is EE01.
    assert 0.62 <= share["ES01"] <= 0.80
    for code in ("ES03", "ES04", "ES05", "ES06", "EE02", "EE03", "EE04"):
        assert codes[code] > 0, code
    assert codes["EE01"] == 40  # every 50th email of 2,000
    for record in out:
        if "EE01" in record["Results"]:
            assert "ES01" not in record["Results"]
