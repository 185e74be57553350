"""Simulated Melissa Personator Consumer: ``POST /v3/WEB/ContactVerify/doContactVerify``.

Wire format as in docs/vendors.md: every response value is a string, blanks are a single
space, request-level errors go in ``TransmissionResults`` with HTTP 200, malformed JSON is HTTP 400
problem-details. Outcomes are drawn from the normalized input and the seed only.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from equity_assets.sandbox.dice import Dice
from equity_assets.sandbox.normalize import (
    NormalAddress,
    is_plausible_email,
    normalize_address,
    normalize_email,
    normalize_phone,
)
from equity_assets.sandbox.state import SandboxState
from equity_assets.sandbox.wire import MalformedBody, json_response, problem, read_json_object

PATH = "/v3/WEB/ContactVerify/doContactVerify"
MAX_RECORDS = 100
VERSION = "8.4.1.sandbox"
BLANK = " "

# Building-level outcome shares; AS02 and AS16 are drawn on top of a verified building.
_BUILDING_OUTCOMES = (("AS01", 0.87), ("AS03", 0.03), ("AE02", 0.06), ("AE05", 0.04))
_MULTI_UNIT_SHARE = 0.08  # verified building, no suite given, suite needed -> AS02
_BAD_SUITE_SHARE = 0.15  # suite given but not in the USPS file -> AS02
_VACANT_SHARE = 0.02  # AS16
_PHONE_OUTCOMES = ((("PS01", "PS07"), 0.58), (("PS01", "PS08"), 0.36), (("PE01",), 0.06))
_EMAIL_OUTCOMES = (
    ("ES01", 0.72), ("ES03", 0.07), ("ES04", 0.03), ("ES05", 0.03), ("ES06", 0.01),
    ("EE02", 0.04), ("EE03", 0.03), ("EE04", 0.07),
)
# Vendor knowledge, not pipeline knowledge: FCC wireless domains and throwaway inbox services.
_WIRELESS_DOMAINS = frozenset(
    {"vtext.com", "txt.att.net", "tmomail.net", "messaging.sprintpcs.com", "vzwpix.com"}
)
_DISPOSABLE_DOMAINS = frozenset(
    {"mailinator.com", "guerrillamail.com", "10minutemail.com", "yopmail.com", "trashmail.com"}
)

router = APIRouter()


@router.post(PATH)
async def do_contact_verify(request: Request) -> Response:
    """Personator batch endpoint."""
    state: SandboxState = request.app.state.sandbox
    try:
        payload = await read_json_object(request)
    except MalformedBody as exc:
        return problem(400, "Bad Request", str(exc))
    config = state.config
    body = personator_response(
        payload, seed=config.seed, license_key=config.melissa_license_key, max_records=config.melissa_max_records
    )
    state.stats.records["melissa_records"] += len(body["Records"])
    return json_response(body)


def personator_response(
    payload: dict[str, Any], *, seed: int, license_key: str, max_records: int = MAX_RECORDS
) -> dict[str, Any]:
    """The response body for one request payload (pure function of payload, seed and limits)."""
    reference = _text(payload.get("TransmissionReference"))
    error = _transmission_error(payload, license_key, max_records)
    if error:
        return _envelope([], reference, error)
    columns = {c.strip().lower() for c in _text(payload.get("Columns")).split(",") if c.strip()}
    records = [_verify_record(record, seed, columns) for record in payload["Records"]]
    return _envelope(records, reference, BLANK)


def _transmission_error(payload: dict[str, Any], license_key: str, max_records: int) -> str:
    """The request-level GE code, or ``""`` when the request may proceed."""
    customer_id = payload.get("CustomerID")
    if not isinstance(customer_id, str) or not customer_id.strip():
        return "GE04"  # license empty
    if customer_id.strip() != license_key:
        return "GE05"  # license invalid
    records = payload.get("Records")
    if records is None or records == []:
        return "GE01"  # empty request
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        return "GE07"  # invalid request
    if len(records) > max_records:
        return "GE03"  # too many records
    return ""


def _envelope(records: list[dict[str, str]], reference: str, transmission_results: str) -> dict[str, Any]:
    return {
        "Records": records,
        "TotalRecords": str(len(records)),
        "TransmissionReference": reference or BLANK,
        "TransmissionResults": transmission_results,
        "Version": VERSION,
    }


def _verify_record(record: dict[str, Any], seed: int, columns: set[str]) -> dict[str, str]:
    """One output record: address, phone, email and (if asked) demographics."""
    address = normalize_address(
        record.get("AddressLine1"), record.get("AddressLine2"), record.get("City"),
        record.get("State"), record.get("PostalCode"),
    )
    codes, fields = _address_part(record, address, seed, geocode="grpgeocode" in columns)
    phone_codes, fields["PhoneNumber"] = _phone_part(record.get("PhoneNumber"), seed)
    email_codes, fields["EmailAddress"] = _email_part(record.get("EmailAddress"), seed)
    if "grpdemographicbasic" in columns:
        fields["DateOfBirth"] = _date_of_birth(record, address, seed)
    all_codes = sorted({*codes, *phone_codes, *email_codes})
    return {"RecordID": _text(record.get("RecordID")) or BLANK, "Results": ",".join(all_codes) or BLANK, **fields}


def _address_part(
    record: dict[str, Any], address: NormalAddress, seed: int, *, geocode: bool
) -> tuple[list[str], dict[str, str]]:
    """Address result codes and output columns."""
    echo = {
        "AddressLine1": _text(record.get("AddressLine1")) or BLANK,
        "AddressLine2": _text(record.get("AddressLine2")) or BLANK,
        "City": _text(record.get("City")) or BLANK,
        "State": _text(record.get("State")) or BLANK,
        "PostalCode": _text(record.get("PostalCode")) or BLANK,
        "CountryCode": "US",
        "MelissaAddressKey": BLANK,
        "MelissaAddressKeyBase": BLANK,
        "AddressKey": BLANK,
    }
    if geocode:
        echo |= {"Latitude": BLANK, "Longitude": BLANK}
    if not address.street or not address.locality:
        return ["AE01"], echo
    building = Dice(seed, "melissa-building", address.building_key)
    outcome = building.weighted(0, _BUILDING_OUTCOMES)
    if outcome.startswith("AE"):
        return [outcome], echo

    codes = [outcome]
    suite_problem = (
        Dice(seed, "melissa-unit", address.unit_key).chance(0, _BAD_SUITE_SHARE)
        if address.unit
        else building.chance(1, _MULTI_UNIT_SHARE)
    )
    if outcome == "AS01" and suite_problem:
        codes = ["AS02"]
    if building.chance(2, _VACANT_SHARE):
        codes.append("AS16")
    delivery_point_known = codes[0] == "AS01" and bool(address.unit)
    mak = _mak(seed, address.unit_key if delivery_point_known else address.building_key)
    mak_base = _mak(seed, address.building_key) if delivery_point_known else BLANK

    zip5 = address.zip5 or f"{Dice(seed, 'melissa-zip', address.locality).below(0, 99000) + 1000:05d}"
    if zip5 != address.zip5:
        codes.append("AC01")
    point = Dice(seed, "melissa-point", address.unit_key if address.unit else address.building_key)
    plus4, delivery = f"{point.below(0, 10000):04d}", f"{point.below(1, 100):02d}"
    usps = codes[0] != "AS03"  # non-USPS addresses have no ZIP+4 / delivery point
    fields = {
        "AddressLine1": address.printable_line1 if codes[0] != "AS02" else address.street,
        "AddressLine2": BLANK,
        "City": address.city or BLANK,
        "State": address.state or BLANK,
        "PostalCode": f"{zip5}-{plus4}" if usps else zip5,
        "CountryCode": "US",
        "MelissaAddressKey": mak,
        "MelissaAddressKeyBase": mak_base,
        "AddressKey": f"{zip5}{plus4}{delivery}" if usps else BLANK,
    }
    if geocode:
        codes.append("GS01")
        fields["Latitude"] = f"{25.0 + building.unit(3) * 23.0:.6f}"
        fields["Longitude"] = f"{-124.0 + building.unit(4) * 57.0:.6f}"
    return codes, fields


def _mak(seed: int, key: str) -> str:
    """10-digit Melissa Address Key of a normalized address.

    A hash into a 9e9 space: collisions between different addresses are possible (about
    n^2 / 1.8e10 expected pairs for n addresses, ~0.6 for 100k) - as rare as a real vendor's
    data errors, and deliberately not papered over.
    """
    return str(10**9 + Dice(seed, "melissa-mak", key).big() % (9 * 10**9))


def _phone_part(raw: object, seed: int) -> tuple[tuple[str, ...], str]:
    """Phone result codes and the output phone column."""
    digits = normalize_phone(raw)
    if not digits:
        return (), BLANK
    if len(digits) != 10:
        return ("PE03",), _text(raw) or BLANK
    if digits[0] in "01":
        return ("PE01",), digits
    if digits[3] in "01":
        return ("PE05",), digits
    codes = Dice(seed, "melissa-phone", digits).weighted(0, _PHONE_OUTCOMES)
    return codes, digits


def _email_part(raw: object, seed: int) -> tuple[tuple[str, ...], str]:
    """Email result codes and the output email column."""
    email = normalize_email(raw)
    if not email:
        return (), BLANK
    if not is_plausible_email(email):
        return ("EE01",), _text(raw) or BLANK
    domain = email.rpartition("@")[2]
    if domain in _WIRELESS_DOMAINS:
        return ("ES04",), email
    if domain in _DISPOSABLE_DOMAINS:
        return ("ES05",), email
    return (Dice(seed, "melissa-email", email).weighted(0, _EMAIL_OUTCOMES),), email


def _date_of_birth(record: dict[str, Any], address: NormalAddress, seed: int) -> str:
    """``YYYYMM`` of the named person at the address, blank when unknown."""
    full = _text(record.get("FullName")) or f"{_text(record.get('FirstName'))} {_text(record.get('LastName'))}"
    name = " ".join(full.upper().split())
    if not name:
        return BLANK
    person = Dice(seed, "melissa-person", name, address.building_key)
    if person.chance(0, 0.10):
        return BLANK
    return f"{1930 + person.below(1, 60)}{1 + person.below(2, 12):02d}"


def _text(value: object) -> str:
    """A request value as trimmed text (vendors accept numbers where strings are expected)."""
    if value is None:
        return ""
    return str(value).strip()
