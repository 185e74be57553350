"""Local settings: created once with 0600, kept across runs, and the campaign's first day."""

from __future__ import annotations

import stat
from datetime import date, datetime
from zoneinfo import ZoneInfo

from equity_assets.devenv import current_campaign_day, ensure_dev_settings, read_dev_settings

PT = ZoneInfo("America/Los_Angeles")


def test_settings_are_generated_private_and_kept(tmp_path):
    path = tmp_path / "home" / "dev.env"
    first = ensure_dev_settings(path)

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first["EQUITY_CONSENT_SECRET"]) >= 32 and first["EQUITY_UPLOAD_SECRETS"]
    assert date.fromisoformat(first["EQUITY_CAMPAIGN_START"]).weekday() < 5
    assert ensure_dev_settings(path) == first == read_dev_settings(path)  # kept, not regenerated


def test_a_key_missing_from_an_old_file_is_added_and_the_others_kept(tmp_path):
    path = tmp_path / "dev.env"
    path.write_text("EQUITY_CONSENT_SECRET=kept-secret-kept-secret-kept-secret\n")
    settings = ensure_dev_settings(path)
    assert settings["EQUITY_CONSENT_SECRET"] == "kept-secret-kept-secret-kept-secret"
    assert set(settings) == {"EQUITY_CONSENT_SECRET", "EQUITY_UPLOAD_SECRETS", "EQUITY_CAMPAIGN_START"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_first_campaign_day_is_the_latest_weekday_already_begun():
    assert current_campaign_day(datetime(2026, 11, 29, 12, tzinfo=PT)) == date(2026, 11, 27)  # Sunday → Friday
    assert current_campaign_day(datetime(2026, 11, 30, 5, 59, tzinfo=PT)) == date(2026, 11, 27)
    assert current_campaign_day(datetime(2026, 11, 30, 6, tzinfo=PT)) == date(2026, 11, 30)
