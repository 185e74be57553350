"""Local settings of a checkout: dev-only secrets and the campaign's first day, kept in one file.

`equity db start` (so every `make` target) creates `<EQUITY_HOME>/dev.env` once, mode 0600, inside
the git-ignored `.equity/`: random `EQUITY_CONSENT_SECRET` and `EQUITY_UPLOAD_SECRETS`, and
`EQUITY_CAMPAIGN_START` = the campaign day current when it was created (the set-up day, or the
weekday before it when set up on a weekend or before 06:00 PT), so that day is the first partition. Later runs keep it, so
consent links minted yesterday still verify today. Values already in the environment win.

Production (`EQUITY_ENV=production`) never reads this file: every setting comes from the
environment, and a missing one stops the code location from loading (see `resources.py`).
"""

from __future__ import annotations

import os
import secrets
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

DEV_FILE = "dev.env"
CAMPAIGN_START_ENV = "EQUITY_CAMPAIGN_START"
_SETUP_DAY_TZ = ZoneInfo("America/Los_Angeles")  # the campaign's calendar


def current_campaign_day(now: datetime) -> date:
    """The latest weekday whose 06:00 (campaign time) has passed at `now`."""
    local = now.astimezone(_SETUP_DAY_TZ)
    day = local.date() if local.time() >= time(6) else local.date() - timedelta(days=1)
    while day.weekday() >= 5:
        day -= timedelta(days=1)
    return day


def dev_settings_path() -> Path:
    from .db.cluster import equity_home

    return equity_home() / DEV_FILE


def read_dev_settings(path: Path | None = None) -> dict[str, str]:
    """The file's KEY=value lines ({} when it does not exist)."""
    path = path or dev_settings_path()
    if not path.exists():
        return {}
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line and not line.startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


def ensure_dev_settings(path: Path | None = None) -> dict[str, str]:
    """Create the file with fresh values when missing (0600); add any key it lacks; return it."""
    path = path or dev_settings_path()
    current = read_dev_settings(path)
    wanted = {
        "EQUITY_CONSENT_SECRET": lambda: secrets.token_urlsafe(32),
        "EQUITY_UPLOAD_SECRETS": lambda: secrets.token_urlsafe(32),
        CAMPAIGN_START_ENV: lambda: current_campaign_day(datetime.now(_SETUP_DAY_TZ)).isoformat(),
    }
    missing = {key: make() for key, make in wanted.items() if key not in current}
    if missing or not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        settings = {**current, **missing}
        body = "# Local development settings (dev-only secrets): never used in production.\n"
        body += "".join(f"{key}={value}\n" for key, value in settings.items())
        # created 0600 from the start: the secrets are never readable by others, not even briefly
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(body)
        current = settings
    os.chmod(path, 0o600)
    return current


def load_dev_settings(path: Path | None = None) -> dict[str, str]:
    """Put the local settings into `os.environ` (without overriding what is set); return them."""
    settings = ensure_dev_settings(path)
    for key, value in settings.items():
        os.environ.setdefault(key, value)
    return settings


def campaign_start() -> str:
    """First campaign day: `EQUITY_CAMPAIGN_START`, else the checkout's set-up day, else today (PT)."""
    configured = os.environ.get(CAMPAIGN_START_ENV)
    if configured:
        return configured
    if os.environ.get("EQUITY_ENV") != "production":
        recorded = read_dev_settings().get(CAMPAIGN_START_ENV)
        if recorded:
            return recorded
    return current_campaign_day(datetime.now(_SETUP_DAY_TZ)).isoformat()
