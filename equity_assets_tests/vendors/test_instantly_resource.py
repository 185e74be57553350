"""InstantlyResource against the sandbox: chunking, skip counts, rate limit recovery, partial failure."""

from __future__ import annotations

import pytest

from equity_assets.sandbox import VENDOR_PATHS, SandboxConfig, SandboxControl
from equity_assets.vendors.instantly import InstantlyChunkError, InstantlyLead, InstantlyResource

INSTANTLY = VENDOR_PATHS["instantly"]
KEY = SandboxConfig().instantly_api_key


def instantly(url: str, **overrides) -> InstantlyResource:
    settings = {
        "api_key": KEY, "base_url": url, "campaign_id": "camp-1",
        "max_retries": 3, "backoff_factor": 0.01, "backoff_jitter": 0.01,
    }
    return InstantlyResource(**{**settings, **overrides})


def leads(count: int, *, offset: int = 0) -> list[InstantlyLead]:
    return [
        InstantlyLead(email=f"lead{n}@example.com", first_name=f"F{n}", custom_variables={"consent_url": f"https://x/{n}"})
        for n in range(offset, offset + count)
    ]


def test_chunks_of_1000_and_everything_kept(sandbox_url: str, sandbox_control: SandboxControl) -> None:
    result = instantly(sandbox_url).add_leads(leads=leads(2500))
    assert [(c.start, c.stop, len(c.emails)) for c in result.chunks] == [(0, 1000, 1000), (1000, 2000, 1000), (2000, 2500, 500)]
    assert result.leads_uploaded == 2500 and result.leads_sent == 2500
    assert result.campaign_id == "camp-1" and result.retries == 0
    assert result.remaining_in_plan == SandboxConfig().instantly_plan_leads - 2500
    kept = sandbox_control.campaign_leads("camp-1")
    assert len(kept) == 2500
    assert kept[42]["custom_variables"] == {"consent_url": "https://x/42"}
    assert sandbox_control.stats()["requests"][f"POST {INSTANTLY}"] == 3


def test_skip_if_in_campaign_counts_and_never_duplicates(sandbox_url: str, sandbox_control: SandboxControl) -> None:
    resource = instantly(sandbox_url)
    resource.add_leads(leads=leads(10))
    again = resource.add_leads(leads=leads(15))  # 10 already there, 5 new
    assert again.leads_uploaded == 5 and again.already_in_campaign == 10
    assert all(lead["upload_count"] == 1 for lead in sandbox_control.campaign_leads("camp-1"))
    forced = resource.add_leads(leads=leads(2), skip_if_in_campaign=False)
    assert forced.leads_uploaded == 2 and forced.already_in_campaign == 0
    counts = sorted(lead["upload_count"] for lead in sandbox_control.campaign_leads("camp-1"))
    assert counts == [1] * 13 + [2] * 2


def test_list_target_and_target_validation(sandbox_url: str, sandbox_control: SandboxControl) -> None:
    resource = instantly(sandbox_url, campaign_id=None)
    with pytest.raises(ValueError):
        resource.add_leads(leads=leads(1))
    with pytest.raises(ValueError):
        resource.add_leads(leads=leads(1), campaign_id="a", list_id="b")
    result = resource.add_leads(leads=leads(3), list_id="list-9")
    assert result.list_id == "list-9" and result.leads_uploaded == 3
    assert len(sandbox_control.list_leads("list-9")) == 3


@pytest.mark.parametrize("sandbox_config", [SandboxConfig(instantly_rate_limit_per_s=2)], indirect=True)
def test_recovers_from_the_rate_limit(sandbox_url: str, sandbox_control: SandboxControl) -> None:
    result = instantly(sandbox_url, chunk_size=10).add_leads(leads=leads(40))
    assert len(result.chunks) == 4 and result.leads_uploaded == 40
    stats = sandbox_control.stats()
    assert stats["rate_limited_429"] >= 1
    assert result.retries == stats["rate_limited_429"]
    assert len(sandbox_control.campaign_leads("camp-1")) == 40


@pytest.mark.parametrize("sandbox_config", [SandboxConfig(instantly_rate_limit_per_min=1)], indirect=True)
def test_failed_chunk_error_carries_the_accepted_chunks(sandbox_url: str, sandbox_control: SandboxControl) -> None:
    # One request per minute: chunk 0 lands, chunk 1 is throttled past the retry budget.
    resource = instantly(sandbox_url, chunk_size=10, max_retries=2, retry_after_max_s=0)
    with pytest.raises(InstantlyChunkError) as failure:
        resource.add_leads(leads=leads(30))
    error = failure.value
    assert [chunk.index for chunk in error.accepted] == [0]
    assert error.accepted[0].leads_uploaded == 10
    assert (error.failed_index, error.failed_start, error.failed_stop) == (1, 10, 20)
    assert error.retries == 2
    assert "429" in str(error)
    assert len(sandbox_control.campaign_leads("camp-1")) == 10
