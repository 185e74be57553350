"""Simulated BatchData skip trace: ``POST /api/v3/property/skip-trace``.

Bearer token required (401 otherwise), at most 100 requests per call (400 otherwise). Each request
is matched or not, and matched ones get owners with phones (DNC/TCPA flags), emails and
litigator/deceased flags, all drawn from the normalized address (or APN) and the seed.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from equity_assets.sandbox.dice import Dice
from equity_assets.sandbox.normalize import clean_text, normalize_address, normalize_state
from equity_assets.sandbox.state import SandboxState
from equity_assets.sandbox.wire import MalformedBody, bearer_token, json_response, read_json_object

PATH = "/api/v3/property/skip-trace"
MAX_REQUESTS = 100

_MATCH_SHARE = 0.84
_PERSON_COUNTS = ((1, 0.6), (2, 0.3), (3, 0.1))
_PHONE_COUNTS = ((0, 0.08), (1, 0.22), (2, 0.30), (3, 0.22), (4, 0.12), (5, 0.06))
_EMAIL_COUNTS = ((0, 0.25), (1, 0.45), (2, 0.22), (3, 0.08))
_PHONE_TYPES = (("Mobile", 0.6), ("Land Line", 0.35), ("VOIP", 0.05))
_CARRIERS = ("Verizon Wireless", "AT&T Mobility", "T-Mobile USA", "Comcast", "Charter Communications", "Frontier")
_DNC_SHARE = 0.18
_TCPA_SHARE = 0.04
_LITIGATOR_SHARE = 0.02
_DECEASED_SHARE = 0.03
_FIRST_NAMES = (
    "MARY", "JAMES", "PATRICIA", "ROBERT", "LINDA", "JOHN", "BARBARA", "WILLIAM", "ELIZABETH", "DAVID",
    "SUSAN", "RICHARD", "JUDITH", "CHARLES", "CAROL", "THOMAS", "MARGARET", "DONALD", "SANDRA", "GARY",
)
_LAST_NAMES = (
    "SMITH", "JOHNSON", "WILLIAMS", "BROWN", "JONES", "GARCIA", "MILLER", "DAVIS", "RODRIGUEZ", "MARTINEZ",
    "HERNANDEZ", "LOPEZ", "WILSON", "ANDERSON", "THOMAS", "TAYLOR", "MOORE", "JACKSON", "MARTIN", "LEE",
)
_EMAIL_DOMAINS = ("gmail.com", "yahoo.com", "aol.com", "hotmail.com", "comcast.net", "outlook.com", "att.net")

router = APIRouter()


@router.post(PATH)
async def skip_trace(request: Request) -> Response:
    """Skip-trace batch endpoint."""
    state: SandboxState = request.app.state.sandbox
    if bearer_token(request) != state.config.batchdata_api_token:
        return _status(401, "Unauthorized")
    try:
        payload = await read_json_object(request)
    except MalformedBody as exc:
        return _status(400, "Bad Request", str(exc))
    requests = payload.get("requests")
    if not isinstance(requests, list) or not requests:
        return _status(400, "Bad Request", "requests must be a non-empty array")
    if len(requests) > MAX_REQUESTS:
        return _status(400, "Bad Request", f"at most {MAX_REQUESTS} requests per call, got {len(requests)}")
    if not all(isinstance(item, dict) for item in requests):
        return _status(400, "Bad Request", "each request must be an object")
    options = payload.get("options") if isinstance(payload.get("options"), dict) else {}
    body = skip_trace_response(
        requests, seed=state.config.seed, include_tcpa=bool(options.get("includeTCPABlacklistedPhones")),
        messy_email_rate=state.config.batchdata_messy_email_rate,
    )
    state.stats.records["batchdata_requests"] += len(requests)
    return json_response(body)


def skip_trace_response(requests: list[dict[str, Any]], *, seed: int, include_tcpa: bool,
                        messy_email_rate: float = 0.0) -> dict[str, Any]:
    """The response body for validated requests (pure function of requests, seed and options)."""
    data = [_trace_one(item, seed, include_tcpa, messy_email_rate) for item in requests]
    matched = sum(1 for item in data if item["meta"]["matched"])
    errors = sum(1 for item in data if item["meta"]["error"])
    return {
        "status": {"code": 200, "text": "OK"},
        "result": {
            "data": data,
            "meta": {
                "results": {
                    "requestCount": len(data),
                    "matchCount": matched,
                    "noMatchCount": len(data) - matched - errors,
                    "errorCount": errors,
                }
            },
        },
    }


def _status(code: int, text: str, message: str | None = None) -> Response:
    status: dict[str, Any] = {"code": code, "text": text}
    if message:
        status["message"] = message
    return json_response({"status": status}, status=code)


def _trace_one(item: dict[str, Any], seed: int, include_tcpa: bool, messy_email_rate: float) -> dict[str, Any]:
    """One entry of ``result.data``."""
    key, property_address = _property_key(item)
    if not key:
        return {
            "input": item,
            "persons": [],
            "meta": {"matched": False, "error": True, "errorMessage": "propertyAddress or apn/county/state required"},
        }
    match = Dice(seed, "batchdata-match", key)
    if not match.chance(0, _MATCH_SHARE):
        return {"input": item, "persons": [], "meta": {"matched": False, "error": False}}
    name = item.get("name") if isinstance(item.get("name"), dict) else {}
    owner_last = clean_text(name.get("last")) or match.pick(1, _LAST_NAMES)
    owner_first = clean_text(name.get("first")) or match.pick(2, _FIRST_NAMES)
    persons = [
        _person(seed, key, index, owner_first if index == 0 else "", owner_last, include_tcpa, messy_email_rate)
        for index in range(match.weighted(3, _PERSON_COUNTS))
    ]
    return {
        "input": item,
        "property": {"address": property_address},
        "persons": persons,
        "meta": {"matched": True, "error": False},
    }


def _property_key(item: dict[str, Any]) -> tuple[str, dict[str, str]]:
    """Identity of the property asked about, and its standardized address (empty if by APN)."""
    address = item.get("propertyAddress")
    if isinstance(address, dict) and clean_text(address.get("street")):
        normal = normalize_address(
            address.get("street"), "", address.get("city"), address.get("state"), address.get("zip")
        )
        if normal.locality:
            printable = {
                "street": normal.printable_line1, "city": normal.city, "state": normal.state, "zip": normal.zip5
            }
            return "addr:" + normal.unit_key, printable
    apn = clean_text(item.get("apn"))
    county = clean_text(item.get("county")) or clean_text(item.get("countyFipsCode"))
    if apn and county:
        return f"apn:{apn}|{county}|{normalize_state(item.get('state'))}", {}
    return "", {}


def _person(seed: int, key: str, index: int, first: str, last: str, include_tcpa: bool,
            messy_email_rate: float = 0.0) -> dict[str, Any]:
    """One person associated with the property (index 0 is the owner)."""
    dice = Dice(seed, "batchdata-person", key, str(index))
    first = first or dice.pick(0, _FIRST_NAMES)
    phones = [_phone(seed, key, index, n) for n in range(dice.weighted(1, _PHONE_COUNTS))]
    if not include_tcpa:  # BatchData drops TCPA-blacklisted phones unless asked to include them
        phones = [phone for phone in phones if not phone["tcpa"]]
    for rank, phone in enumerate(phones, start=1):
        phone["rank"] = rank
    emails = [
        {
            "rank": n + 1,
            "email": _messy(Dice(seed, "batchdata-messy-email", key, str(index), str(n)), messy_email_rate,
                            f"{first}.{last}{'' if n == 0 else n + 1}@{dice.pick(4 + n, _EMAIL_DOMAINS)}".lower()),
            "tested": dice.chance(8 + n, 0.7),
        }
        for n in range(dice.weighted(2, _EMAIL_COUNTS))
    ]
    return {
        "propertyOwner": index == 0,
        "name": {"first": first.title(), "last": last.title(), "full": f"{first} {last}".title()},
        "phones": phones,
        "emails": emails,
        "litigator": dice.chance(12, _LITIGATOR_SHARE),
        "deceased": dice.chance(13, _DECEASED_SHARE),
        "dob": f"{1930 + dice.below(14, 60)}-{1 + dice.below(15, 12):02d}-{1 + dice.below(3, 28):02d}",
    }


def _messy(dice: Dice, rate: float, email: str) -> str:
    """Real skip-trace data has addresses padded with blanks, and some with a blank inside (a guess
    would be needed to repair those); ``rate`` of the emails come back one way or the other."""
    if rate <= 0 or not dice.chance(0, rate):
        return email
    return f"  {email.upper()}\t" if dice.chance(1, 0.5) else email.replace(".", " ", 1)


def _phone(seed: int, key: str, person: int, n: int) -> dict[str, Any]:
    """One phone of a person, flags included."""
    dice = Dice(seed, "batchdata-phone", key, str(person), str(n))
    # NANP shape: area code and exchange never start with 0 or 1.
    area = f"{2 + dice.below(0, 8)}{dice.below(1, 100):02d}"
    exchange = f"{2 + dice.below(2, 8)}{dice.below(3, 100):02d}"
    number = f"{area}{exchange}{dice.below(4, 10000):04d}"
    tested = dice.chance(7, 0.8)
    return {
        "rank": n + 1,
        "number": number,
        "type": dice.weighted(5, _PHONE_TYPES),
        "carrier": dice.pick(6, _CARRIERS),
        "tested": tested,
        "reachable": tested and dice.chance(8, 0.85),
        "dnc": dice.chance(9, _DNC_SHARE),
        "tcpa": dice.chance(10, _TCPA_SHARE),
    }
