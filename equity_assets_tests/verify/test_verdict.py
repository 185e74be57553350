"""Combining provider answers into one verdict, and the value helpers behind it (pure functions)."""

from __future__ import annotations

from datetime import date

from equity_assets.verify.providers import birth_month, clean_email, e164
from equity_assets.verify.verdict import FoundContact, LeadToVerify, ProviderAnswer, combine_answers


def answer(provider: str, matched: bool, **fields) -> ProviderAnswer:
    return ProviderAnswer(provider=provider, lead_id="L", matched=matched, **fields)


def test_first_match_answers_and_codes_of_all_answers_are_kept() -> None:
    lead = LeadToVerify(id="L", email="a@example.com", phone="+12175550123")
    verdict = combine_answers(lead, [
        answer("melissa", False, address_codes=("AE02",), email_codes=("ES01",), phone_codes=("PS01",), payload={"m": 1}),
        answer("batchdata", True, phone_codes=("BP02",), payload={"b": 1}),
    ])
    assert verdict.provider == "batchdata" and verdict.matched
    assert verdict.phone_codes == ("PS01", "BP02")  # a DNC flag is never hidden by another "valid"
    assert verdict.melissa_payload == {"m": 1} and verdict.provider_payload == {"b": 1}


def test_no_match_anywhere_is_answered_by_the_first_provider() -> None:
    verdict = combine_answers(LeadToVerify(id="L"), [answer("melissa", False), answer("batchdata", False)])
    assert (verdict.provider, verdict.matched) == ("melissa", False)


def test_found_contacts_fill_empty_channels_only_with_usable_ones() -> None:
    phones = (FoundContact("+13055550001", ("BP02",)), FoundContact("+13055550002", ("BP04",)),
              FoundContact("+13055550003", ("BP01",)))
    emails = (FoundContact("untested@example.com", ("BE02",)), FoundContact("tested@example.com", ("BE01",)))
    verdict = combine_answers(LeadToVerify(id="L"), [answer("batchdata", True, phones=phones, emails=emails)])
    assert (verdict.new_phone, verdict.phone_codes) == ("+13055550003", ("BP01",))
    assert (verdict.new_email, verdict.email_codes) == ("tested@example.com", ("BE01",))
    assert verdict.dnc_phones == ("+13055550001",) and verdict.alt_phones == ("+13055550002",)
    assert verdict.alt_emails == ("untested@example.com",)
    assert [(s.channel, s.value, s.code) for s in verdict.suppressions] == [("phone", "+13055550001", "BP02")]


def test_a_litigator_or_deceased_owner_suppresses_the_leads_own_channels() -> None:
    lead = LeadToVerify(id="L", email="own@example.com", phone="+12175550123")
    verdict = combine_answers(lead, [answer("batchdata", True, litigator=True, deceased=True)])
    assert {(s.channel, s.value, s.code) for s in verdict.suppressions} == {
        ("phone", "+12175550123", "BL01"), ("phone", "+12175550123", "BD01"), ("email", "own@example.com", "BD02"),
    }
    assert verdict.litigator and verdict.deceased


def test_value_helpers() -> None:
    assert birth_month("195407") == date(1954, 7, 1) == birth_month("1954-07-23")
    assert birth_month("195413") is None and birth_month(None) is None and birth_month(" ") is None
    assert e164("(217) 555-0123") == "+12175550123" == e164("12175550123")
    assert e164("0175550123") is None and e164("2170550123") is None and e164("555-0123") is None
    assert clean_email(" Jane.Doe@Example.COM ") == "jane.doe@example.com"
    assert clean_email("no-at-sign") is None and clean_email("a@b@c") is None
