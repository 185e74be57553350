"""Building campaign test data with SQL (the verification stage is another issue's) and running jobs."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

import dagster as dg
import psycopg

from equity_assets.campaign.definitions import defs as campaign_defs
from equity_assets.campaign.feeder import select_day
from equity_assets.db.resources import PostgresResource
from equity_assets.sandbox import SandboxConfig
from equity_assets.vendors.instantly import InstantlyResource

SANDBOX_KEY = SandboxConfig().instantly_api_key
RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"
BATCH = dg.AssetKey("daily_campaign_batch")
PUSH = dg.AssetKey("instantly_campaign_leads")


def add_broker(conn: psycopg.Connection, *, cap: int = 250, campaign: str | None = None, active: bool = True) -> uuid.UUID:
    """A broker with its own Instantly campaign (named after it unless given)."""
    broker = uuid.uuid4()
    conn.execute(
        "INSERT INTO brokers (id, name, daily_cap, instantly_campaign_id, active) VALUES (%s, %s, %s, %s, %s)",
        (broker, f"Broker {str(broker)[:8]}", cap, campaign or f"camp-{broker}", active),
    )
    return broker


def add_leads(
    conn: psycopg.Connection,
    broker: uuid.UUID | None,
    scores: Sequence[float],
    *,
    status: str = "queued",
    verified: bool = True,
    email_codes: Sequence[str] = (),
    prefix: str | None = None,
) -> list[uuid.UUID]:
    """Leads as the verification stage leaves them: verified email, score, broker, status."""
    prefix = prefix or uuid.uuid4().hex[:8]
    rows = conn.execute(
        """INSERT INTO leads (email, first_name, last_name, property_address, property_city, property_state,
                              email_verified, email_codes, lead_score, assigned_broker_id, campaign_status)
           SELECT %s || '-' || n || '@example.com', 'First' || n, 'Last' || n, n || ' Main St', 'Austin', 'TX',
                  %s, %s, s, %s, %s::campaign_status
           FROM unnest(%s::numeric[]) WITH ORDINALITY AS t(s, n)
           RETURNING id, lead_score""",
        (prefix, verified, list(email_codes), broker, status, list(scores)),
    ).fetchall()
    return [r[0] for r in rows]


def email_of(conn: psycopg.Connection, lead: uuid.UUID) -> str:
    return conn.execute("SELECT email FROM leads WHERE id = %s", (lead,)).fetchone()[0]


def suppress(conn: psycopg.Connection, email: str, *, expires_at: Any = None) -> None:
    conn.execute(
        "INSERT INTO suppression_list (channel, value, reason, source, expires_at) VALUES ('email', %s, 'test', 'unsubscribe', %s)",
        (email, expires_at),
    )


def sends(conn: psycopg.Connection, batch_date: date | None = None) -> list[tuple]:
    """(batch_date, lead_id, broker_id, status) of campaign_sends, optionally for one date."""
    return conn.execute(
        """SELECT batch_date, lead_id, broker_id, status FROM campaign_sends
           WHERE %s::date IS NULL OR batch_date = %s ORDER BY batch_date, broker_id, lead_id""",
        (batch_date, batch_date),
    ).fetchall()


def instantly(url: str, **overrides: Any) -> InstantlyResource:
    """Instantly pointed at a sandbox, with fast retries; brokers carry their own campaign ids."""
    settings: dict[str, Any] = {
        "api_key": SANDBOX_KEY, "base_url": url, "campaign_id": None,
        "max_retries": 3, "backoff_factor": 0.01, "backoff_jitter": 0.01,
    }
    return InstantlyResource(**{**settings, **overrides})


def definitions(postgres: PostgresResource, instantly_resource: InstantlyResource) -> dg.Definitions:
    return dg.Definitions.merge(
        campaign_defs, dg.Definitions(resources={"postgres": postgres, "instantly": instantly_resource})
    )


def run_campaign(
    defs: dg.Definitions,
    *,
    partition: str | None = None,
    partition_range: tuple[str, str] | None = None,
    assets: Iterable[dg.AssetKey] | None = None,
    run_config: Mapping[str, Any] | None = None,
) -> dg.ExecuteInProcessResult:
    """Run `daily_campaign_job` for one partition or a range (one run), as the schedule or a backfill would."""
    job = defs.resolve_job_def("daily_campaign_job")
    tags = {RANGE_START: partition_range[0], RANGE_END: partition_range[1]} if partition_range else None
    return job.execute_in_process(
        partition_key=partition,
        tags=tags,
        asset_selection=list(assets) if assets else None,
        instance=dg.DagsterInstance.ephemeral(),
        run_config=run_config,
        raise_on_error=False,
    )


def select_only(conn: psycopg.Connection, day: str) -> None:
    """Record `day`'s batch without pushing it, as a crash between the two would leave it."""
    with conn.transaction():
        select_day(conn, date.fromisoformat(day), default_campaign=None, now=datetime.now(UTC))


def refresh(defs: dg.Definitions, **config: Any) -> dg.ExecuteInProcessResult:
    """Materialize `contactable_leads` (the 05:30 job)."""
    run_config = {"ops": {"contactable_leads": {"config": config}}} if config else None
    result = defs.resolve_job_def("contactable_leads_job").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), run_config=run_config
    )
    assert result.success
    return result


def materialization_metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict[str, Any]:
    events = [e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey(asset)]
    return {k: v.value for k, v in events[-1].materialization.metadata.items()}


def wired_definitions() -> dg.Definitions:
    """The campaign definitions with placeholder resources: enough to load, resolve and tick schedules."""
    resources = {"postgres": PostgresResource(dsn="postgresql://unused"),
                 "instantly": InstantlyResource(api_key="unused", base_url="http://127.0.0.1:9")}
    return dg.Definitions.merge(campaign_defs, dg.Definitions(resources=resources))
