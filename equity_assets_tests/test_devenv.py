"""Local settings: created once with 0600, kept across runs, and the campaign's first day."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
from datetime import date, datetime
from pathlib import Path
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


def test_make_dev_refuses_a_sandbox_port_already_in_use(tmp_path, test_db):
    """Another checkout's `make dev` on the same port must not become ours: stop before starting."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = {**os.environ, "EQUITY_HOME": str(tmp_path), "EQUITY_DATABASE_URL": test_db.app_dsn,
               "DAGSTER_PG_URL": "postgresql+psycopg2://unused"}
        result = subprocess.run([Path(sys.executable).parent / "equity", "dev", "--sandbox-port", str(port)],
                                env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert f"port {port} is in use" in result.stderr
    assert stat.S_IMODE((tmp_path / "dev.env").stat().st_mode) == 0o600  # settings made, nothing started
