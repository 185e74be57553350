"""What a gateway process is configured with. Secrets are not here: they come from the environment."""

from __future__ import annotations

import ipaddress
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from equity_assets.db.cluster import equity_home
from equity_assets.db.resources import PostgresResource
from equity_assets.security.signing import DEFAULT_TOLERANCE_S

from .webhooks import WebhookSettings

MIB = 1024 * 1024
TRUSTED_PROXIES_ENV = "EQUITY_GATEWAY_TRUSTED_PROXIES"


def trusted_proxies_from_env() -> tuple[str, ...]:
    """Comma-separated addresses / networks of reverse proxies whose X-Forwarded-For we believe."""
    raw = os.environ.get(TRUSTED_PROXIES_ENV, "")
    entries = tuple(e.strip() for e in raw.split(",") if e.strip())
    for entry in entries:
        ipaddress.ip_network(entry, strict=False)  # refuse a typo at start-up, not per request
    return entries


def default_upload_dir() -> Path:
    """``$EQUITY_HOME/uploads``, resolved at call time."""
    return equity_home() / "uploads"


@dataclass(frozen=True)
class GatewaySettings:
    """Tunables of one gateway process; the defaults are those in docs/architecture.md ("Gateway").

    ``clock`` (unix seconds) decides signature freshness; tests inject a fixed one so the ±300 s
    boundary is exact. Rate-limit windows use the database's clock instead, so every gateway
    process counts against the same time line.
    """

    upload_dir: Path | None = None  # None: $EQUITY_HOME/uploads
    max_body_bytes: int = 512 * MIB
    rate_limit_per_window: int = 100
    rate_limit_window: timedelta = timedelta(minutes=1)
    signature_tolerance_s: int = DEFAULT_TOLERANCE_S
    replay_window: timedelta = timedelta(days=7)
    clock: Callable[[], float] = time.time
    postgres: PostgresResource | None = None  # None: PostgresResource() (EQUITY_DATABASE_URL or embedded)
    pool_size: int = 8  # connections per gateway process when it opens its own pool
    health_connect_timeout_s: int = 3
    # Empty: the TCP peer is the client (any client can write X-Forwarded-For, so it is ignored).
    trusted_proxies: tuple[str, ...] = field(default_factory=trusted_proxies_from_env)
    webhooks: WebhookSettings = field(default_factory=WebhookSettings)

    def resolved_upload_dir(self) -> Path:
        """Where content-addressed upload files live."""
        return Path(self.upload_dir) if self.upload_dir is not None else default_upload_dir()
