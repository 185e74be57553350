"""Skip-trace emails with blanks: trimmed when that is unambiguous, otherwise never used, with a reason.

The sandbox's ``batchdata_messy_email_rate`` makes BatchData answer with addresses padded with
blanks or with a blank inside, as real skip-trace data does.
"""

from __future__ import annotations

import pytest

from equity_assets.sandbox import SandboxConfig
from equity_assets.vendors.batchdata import SkipTraceEmail, SkipTracePerson, SkipTraceResult
from equity_assets.verify.providers import batchdata_answer, clean_email
from equity_assets.verify.verdict import EMAIL_MALFORMED, LeadToVerify, combine_answers

MESSY = pytest.mark.parametrize("sandbox_config", [SandboxConfig(batchdata_messy_email_rate=1.0)], indirect=True)


def emails_of(candidate) -> list[SkipTraceEmail]:
    return [e for p in candidate.batchdata.persons for e in p.emails]


def usable_trace(candidate) -> bool:
    persons = candidate.batchdata.persons
    return (candidate.batchdata.matched and not candidate.batchdata.error and bool(persons and persons[0].emails)
            and not any(p.deceased or p.litigator for p in persons) and any(e.tested for e in emails_of(candidate)))


def blank_inside(candidate) -> bool:
    return usable_trace(candidate) and all(" " in e.email.strip() for e in emails_of(candidate))


def padded(candidate) -> bool:
    return usable_trace(candidate) and all(e.email != e.email.strip() and " " not in e.email.strip()
                                           for e in emails_of(candidate))


@MESSY
def test_an_email_with_a_blank_inside_is_never_usable_and_says_why(candidates, insert_leads, run_verify, query):
    (home,) = candidates(1, blank_inside)
    (lead_id,) = insert_leads([home.lead()])  # no email, no phone: BatchData's skip trace fills them

    run = run_verify()

    assert run.success and run.checks()["verified_leads_match_schema"]
    (row,) = query("SELECT verification_provider, email, email_verified, email_codes, alt_emails FROM leads "
                   "WHERE id = %s", (lead_id,))
    assert row == ("batchdata", None, False, [EMAIL_MALFORMED], [])
    assert run.metadata["malformed_emails"] == len(emails_of(home))
    assert query("SELECT usable FROM verification_code_map WHERE code = %s", (EMAIL_MALFORMED,)) == [(False,)]
    # nothing lost: the provider's answer, blanks included, is kept with the lead
    (stored,) = query("SELECT provider_payload #>> '{persons,0,emails,0,email}' FROM leads WHERE id = %s", (lead_id,))
    assert stored == (home.batchdata.persons[0].emails[0].email,)


@MESSY
def test_an_email_padded_with_blanks_is_trimmed_and_used(candidates, insert_leads, run_verify, query):
    (home,) = candidates(1, padded)
    (lead_id,) = insert_leads([home.lead()])

    run = run_verify()

    assert run.success and run.checks()["verified_leads_match_schema"]
    tested = next(e.email for e in emails_of(home) if e.tested)
    (row,) = query("SELECT email, email_verified, email_codes FROM leads WHERE id = %s", (lead_id,))
    assert row == (tested.strip().lower(), True, ["BE01"])


def test_translation_keeps_a_malformed_email_out_of_the_contacts() -> None:
    person = SkipTracePerson(first_name="Mary", last_name="Lee", full_name=None, property_owner=True, litigator=False,
                             deceased=False, dob=None, phones=(), emails=(
        SkipTraceEmail(email="mary ann.lee@gmail.com", rank=1, tested=True),
        SkipTraceEmail(email="  Mary.Lee2@GMAIL.com\t", rank=2, tested=False),
    ))
    result = SkipTraceResult(request_id="0", matched=True, persons=(person,))
    answer = batchdata_answer(LeadToVerify(id="L"), result)
    verdict = combine_answers(LeadToVerify(id="L"), [answer])
    assert verdict.new_email is None and verdict.email_codes == (EMAIL_MALFORMED,)
    assert verdict.alt_emails == ("mary.lee2@gmail.com",)
    assert verdict.malformed_emails == ("mary ann.lee@gmail.com",)
    assert clean_email("a b@example.com") is None and clean_email("a@b@example.com") is None
    assert clean_email("\u00a0Jane@Example.com ") == "jane@example.com"
