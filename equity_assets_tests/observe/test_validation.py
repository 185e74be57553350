"""Read-back validation: failures name the column, the check and examples, never personal values."""

import dagster as dg
import pandas as pd

from equity_assets.campaign.checks import _CONTACTABLE_SAMPLE, EMAIL_SHAPE_CHECKS
from equity_assets.campaign.schemas import ContactableLeadsTable
from equity_assets.observe.validation import SAMPLE_LIMIT, check_table_sample, failures_of
from equity_assets.verify.schemas import VerifiedLeadsTable


def verified_frame(**overrides) -> pd.DataFrame:
    row = {"id": "lead-1", "verification_provider": "melissa", "mak": "1234567890", "email": "a@example.com",
           "phone": "+12175550100", "email_verified": True, "phone_verified": True, "litigator": False,
           "deceased": False, "phone_in_dnc": False}
    return pd.DataFrame([{**row, **overrides}]).set_index("id", drop=False)


def test_a_valid_sample_has_no_failures():
    assert failures_of(VerifiedLeadsTable, verified_frame()) == []


def test_failures_name_column_check_and_example_values():
    failures = failures_of(VerifiedLeadsTable, verified_frame(verification_provider="tlo", mak="12"))
    by_column = {f["column"]: f for f in failures}
    assert by_column["verification_provider"]["examples"] == ["tlo"]
    assert by_column["verification_provider"]["check"].startswith("isin")
    assert by_column["mak"]["examples"] == ["12"] and by_column["mak"]["count"] == 1


def test_personal_values_are_replaced_by_the_row_key():
    failures = failures_of(VerifiedLeadsTable, verified_frame(phone="555-0100"))
    (phone,) = [f for f in failures if f["column"] == "phone"]
    assert phone["example_rows"] == ["lead-1"] and "examples" not in phone


def test_only_a_usable_email_must_look_like_an_address():
    assert failures_of(VerifiedLeadsTable, verified_frame(email="not-an-email", email_verified=False)) == []
    (failure,) = failures_of(VerifiedLeadsTable, verified_frame(email="not-an-email"))
    assert (failure["column"], failure["check"]) == ("(row)", "usable_email_is_an_address")


def test_a_usable_phone_for_a_litigator_fails_the_frame_check():
    failures = failures_of(VerifiedLeadsTable, verified_frame(litigator=True))
    assert [(f["column"], f["check"], f["count"], f["example_rows"]) for f in failures] == [
        ("(row)", "no_usable_phone_for_litigator_deceased_or_dnc", 1, ["lead-1"])]


def test_the_contactable_sample_fails_on_a_bad_row(postgres):
    with postgres.connection() as conn:
        conn.execute("DELETE FROM contactable_leads")  # the shared clean-up does not cover campaign tables
        for email in ("Mixed@Example.com", "ok@example.com"):
            conn.execute("INSERT INTO contactable_leads (lead_id, broker_id, email) "
                         "VALUES (gen_random_uuid(), gen_random_uuid(), %s)", (email,))
        outcome = check_table_sample(conn, ContactableLeadsTable, _CONTACTABLE_SAMPLE, key="lead_id")
    assert not outcome.passed
    assert outcome.metadata["rows_checked"].value == 2
    assert outcome.metadata["sample_limit"].value == SAMPLE_LIMIT
    (failure,) = outcome.metadata["failures"].value
    assert failure["column"] == "email" and failure["check"] == "lower_case" and len(failure["example_rows"]) == 1


def test_a_known_fault_warns_instead_of_blocking(postgres):
    with postgres.connection() as conn:
        conn.execute("DELETE FROM contactable_leads")
        conn.execute("INSERT INTO contactable_leads (lead_id, broker_id, email) "
                     "VALUES (gen_random_uuid(), gen_random_uuid(), 'jo ann@example.com')")
        warned = check_table_sample(conn, ContactableLeadsTable, _CONTACTABLE_SAMPLE, key="lead_id",
                                    warn_only=EMAIL_SHAPE_CHECKS)
        conn.execute("INSERT INTO contactable_leads (lead_id, broker_id, email) "
                     "VALUES (gen_random_uuid(), gen_random_uuid(), 'Upper@example.com')")
        blocked = check_table_sample(conn, ContactableLeadsTable, _CONTACTABLE_SAMPLE, key="lead_id",
                                     warn_only=EMAIL_SHAPE_CHECKS)
    assert not warned.passed and warned.severity == dg.AssetCheckSeverity.WARN
    assert not blocked.passed and blocked.severity == dg.AssetCheckSeverity.ERROR
