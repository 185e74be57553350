"""MelissaResource against the sandbox, and the Personator parser on Melissa's own example."""

from __future__ import annotations

import json

import dagster as dg
import pytest

from equity_assets.sandbox import VENDOR_PATHS, FaultKnobs, SandboxConfig, SandboxControl
from equity_assets.vendors.http import ProviderHTTPError
from equity_assets.vendors.melissa import ContactInput, MelissaLicenseError, MelissaResource, parse_personator_response, PersonatorResult

MELISSA = VENDOR_PATHS["melissa"]
LICENSE = SandboxConfig().melissa_license_key

# The response example of reference/external-apis.md, verbatim except for the record's trailing "…"
# (an elision, not JSON).
MELISSA_EXAMPLE = """{"Records":[{"RecordID":"1","Results":"AC02,AC03,AS01","AddressLine1":"…","City":"…",
  "State":"CA","PostalCode":"92688-2112","MelissaAddressKey":"8008006245","MelissaAddressKeyBase":" ",
  "AddressKey":"92688211282","EmailAddress":" ","PhoneNumber":" "}],"TotalRecords":"1",
  "TransmissionReference":" ","TransmissionResults":" ","Version":"…"}"""


def melissa(url: str, **overrides) -> MelissaResource:
    settings = {"license_key": LICENSE, "base_url": url, "max_retries": 3, "backoff_factor": 0.01, "backoff_jitter": 0.01}
    return MelissaResource(**{**settings, **overrides})


def contacts(count: int) -> list[ContactInput]:
    return [
        ContactInput(
            record_id=f"lead-{n}",
            address_line1=f"{n + 1} Cedar Lane",
            city="Springfield",
            state="IL",
            postal_code="62704",
            email=f"owner{n}@example.com",
            phone=f"217-555-{n:04d}",
            first_name="Pat",
            last_name=f"Owner{n}",
        )
        for n in range(count)
    ]


def test_melissa_example_response_parses() -> None:
    parsed = parse_personator_response(json.loads(MELISSA_EXAMPLE))
    assert parsed.transmission_codes == ()
    assert parsed.total_records == 1 and parsed.transmission_reference is None and parsed.version == "…"
    (record,) = parsed.records
    assert record.record_id == "1"
    assert record.result_codes == ("AC02", "AC03", "AS01")
    assert record.address_codes == ("AC02", "AC03", "AS01") and record.email_codes == ()
    assert record.address_verified
    assert record.mak == "8008006245" and record.mak_base is None
    assert record.address_key == "92688211282" and record.postal_code == "92688-2112" and record.state == "CA"
    assert record.email is None and record.phone is None  # " " blanks
    assert record.date_of_birth is None and record.latitude is None


def test_blank_and_error_records_parse_to_none() -> None:
    record = PersonatorResult.from_wire(
        {"RecordID": "9", "Results": "AE02,EE01,PE01", "MelissaAddressKey": " ", "DateOfBirth": "195407", "Latitude": " "},
        record_id="lead-9",
    )
    assert record.record_id == "lead-9"
    assert not record.address_verified and record.mak is None and record.latitude is None
    assert record.phone_codes == ("PE01",) and record.has("EE01")
    assert record.birth_year == 1954


def test_batches_of_at_most_100_in_input_order(sandbox_url: str, sandbox_control: SandboxControl) -> None:
    records = contacts(250)
    results = melissa(sandbox_url, max_concurrency=3, columns="GrpDemographicBasic").verify_contacts(records=records)
    assert [r.record_id for r in results] == [c.record_id for c in records]
    stats = sandbox_control.stats()
    assert stats["requests"][f"POST {MELISSA}"] == 3
    assert stats["records"]["melissa_records"] == 250
    assert sum(r.address_verified for r in results) > 200
    assert all(r.mak is None or (len(r.mak) == 10 and r.mak.isdigit()) for r in results)
    assert sum(r.date_of_birth is not None for r in results) > 200
    assert all(r.result_codes for r in results)


@pytest.mark.parametrize("sandbox_config", [SandboxConfig(melissa_max_records=30)], indirect=True)
def test_ge03_splits_the_batch_until_it_fits(sandbox_url: str, sandbox_control: SandboxControl) -> None:
    records = contacts(100)
    results = melissa(sandbox_url).verify_contacts(records=records)
    assert [r.record_id for r in results] == [c.record_id for c in records]
    # 100 refused, 2 x 50 refused, 4 x 25 accepted.
    assert sandbox_control.stats()["requests"][f"POST {MELISSA}"] == 7
    assert sandbox_control.stats()["records"]["melissa_records"] == 100


def test_wrong_license_is_a_license_error(sandbox_url: str) -> None:
    with pytest.raises(MelissaLicenseError) as failure:
        melissa(sandbox_url, license_key="not-the-key").verify_contacts(records=contacts(1))
    assert failure.value.codes == ("GE05",)
    assert "GE05" in str(failure.value)


def test_same_input_same_results_and_variants_share_the_mak(sandbox_url: str) -> None:
    resource = melissa(sandbox_url)
    first = resource.verify_contacts(records=contacts(40))
    assert first == resource.verify_contacts(records=contacts(40))
    variants = [
        ContactInput(record_id="a", address_line1="7 Cedar Lane Apt 2", city="Springfield", state="IL"),
        ContactInput(record_id="b", address_line1="7 CEDAR LN", address_line2="#2", city="springfield", state="Illinois"),
    ]
    a, b = resource.verify_contacts(records=variants)
    assert a.mak == b.mak and a.result_codes == b.result_codes


def test_throttled_then_success(sandbox_url: str, sandbox_control: SandboxControl) -> None:
    sandbox_control.set_faults(fail_next=1, fail_next_status=429, retry_after_s=1)
    resource = melissa(sandbox_url)
    assert len(resource.verify_contacts(records=contacts(5))) == 5
    assert resource.retries_total == 1
    assert sandbox_control.stats()["injected_429"] == 1


def test_server_errors_then_success(sandbox_url: str, sandbox_control: SandboxControl) -> None:
    sandbox_control.set_faults(fail_next=2)
    resource = melissa(sandbox_url)
    assert len(resource.verify_contacts(records=contacts(5))) == 5
    assert resource.retries_total == 2


@pytest.mark.parametrize("sandbox_config", [SandboxConfig(faults=FaultKnobs(error_rate=1.0))], indirect=True)
def test_server_errors_forever_raise_after_the_retries(sandbox_url: str, sandbox_control: SandboxControl) -> None:
    resource = melissa(sandbox_url, max_retries=2)
    with pytest.raises(ProviderHTTPError) as failure:
        resource.verify_contacts(records=contacts(5))
    assert failure.value.provider == "melissa" and failure.value.retries == 2
    assert failure.value.status_code in (500, 502, 503)
    assert sandbox_control.stats()["requests"][f"POST {MELISSA}"] == 3


@pytest.mark.parametrize("sandbox_config", [SandboxConfig(faults=FaultKnobs(latency_ms=100))], indirect=True)
def test_batches_run_concurrently(sandbox_url: str, sandbox_control: SandboxControl) -> None:
    melissa(sandbox_url, batch_size=10, max_concurrency=4).verify_contacts(records=contacts(80))
    assert sandbox_control.stats()["max_in_flight"][f"POST {MELISSA}"] >= 2


def test_resource_works_inside_dagster(sandbox_url: str) -> None:
    @dg.asset(pool=MelissaResource.pool)
    def verified(melissa: MelissaResource) -> dg.MaterializeResult:
        results = melissa.verify_contacts(records=contacts(3))
        return dg.MaterializeResult(metadata={"verified": sum(r.address_verified for r in results)})

    outcome = dg.materialize([verified], resources={"melissa": melissa(sandbox_url)})
    assert outcome.success
    (materialization,) = outcome.asset_materializations_for_node("verified")
    assert materialization.metadata["verified"].value >= 1
