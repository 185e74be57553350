"""Alerts: conditions measured in SQL, and a sink that notifies once per episode.

An alert has a key (``dlq_depth``, ``run_failed:daily_campaign_job`` …). :meth:`AlertSink.fire`
notifies when the key starts firing and again only after ``repeat_after``; :meth:`AlertSink.clear`
sends one recovery message when a firing key clears. The state is the ``alert_state`` table, so a
sensor tick, a second evaluation or a daemon restart never repeats a message. A message is sent
before its state is committed: a webhook that fails leaves the state as it was, and the next
evaluation tries again (at least once, never silently dropped).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import timedelta

import dagster as dg
import psycopg
import requests
from pydantic import Field

log = logging.getLogger("equity_assets.alerts")

@dataclass(frozen=True)
class Condition:
    """One measured alert condition."""

    key: str
    firing: bool
    value: float
    summary: str


class AlertNotDelivered(RuntimeError):
    """The webhook did not take the message (its state is unchanged, so it is sent again)."""


class AlertThresholds(dg.Config):
    """When each measured condition fires (each is documented in the runbook). Each can be set
    from the environment as ``EQUITY_ALERT_<FIELD>``, e.g. ``EQUITY_ALERT_DLQ_DEPTH=500``."""

    signature_failure_pct: float = 5.0  # failed signature checks among signed requests, last hour
    signature_min_requests: int = 20  # below this volume a rate says nothing
    dlq_depth: int = 100  # pending dead letters
    failed_sends: int = 0  # campaign sends failed in the last day
    duplicate_uploads_per_hour: int = 10  # uploads refused as replays of earlier content
    contactable_stale_hours: int = 26  # the daily refresh missed (only once it has ever run)
    default_partition_rows: int = 0  # events that found no monthly partition

    @classmethod
    def from_env(cls) -> AlertThresholds:
        return cls(**{name: os.environ[f"EQUITY_ALERT_{name.upper()}"] for name in cls.model_fields
                      if f"EQUITY_ALERT_{name.upper()}" in os.environ})


# Signature failures are the rejections the gateway answered 401: it does so exactly when a
# signature or credential check fails, whatever the reason code.
_MEASURE_SQL = """
SELECT
    (SELECT count(*) FROM pipeline_events
     WHERE event_type IN ('upload_rejected', 'request_rejected') AND created_at >= now() - interval '1 hour'
       AND payload->>'status' = '401')                                                     AS signature_failures,
    (SELECT count(*) FROM pipeline_events
     WHERE event_type = 'upload_received' AND created_at >= now() - interval '1 hour')
    + (SELECT count(*) FROM webhook_events WHERE received_at >= now() - interval '1 hour')  AS signed_accepted,
    (SELECT count(*) FROM pipeline_dlq WHERE status = 'pending')                           AS dlq_pending,
    (SELECT count(*) FROM campaign_sends
     WHERE status = 'failed' AND batch_date >= current_date - 1 AND updated_at >= now() - interval '1 day')
                                                                                          AS failed_sends,
    (SELECT count(*) FROM pipeline_events
     WHERE event_type = 'upload_rejected' AND created_at >= now() - interval '1 hour'
       AND payload->>'reason' = 'replay')                                                  AS duplicate_uploads,
    (SELECT extract(epoch FROM now() - refreshed_at) / 3600 FROM contactable_refresh_state) AS contactable_age_h,
    (SELECT count(*) FROM pipeline_events_default)                                        AS default_rows
"""


def measure_conditions(conn: psycopg.Connection, t: AlertThresholds) -> list[Condition]:
    """Every measured condition, firing or not, from one round trip."""
    (sig_bad, sig_ok, dlq, failed, dupes, age_h, default_rows) = conn.execute(_MEASURE_SQL).fetchone()
    signed = sig_bad + sig_ok
    sig_pct = 100.0 * sig_bad / signed if signed else 0.0
    age = float(age_h) if age_h is not None else 0.0
    return [
        Condition("signature_failure_rate", signed >= t.signature_min_requests and sig_pct > t.signature_failure_pct,
                  round(sig_pct, 2), f"{sig_bad} of {signed} signed requests failed their signature check in the "
                                     f"last hour ({sig_pct:.1f}% > {t.signature_failure_pct:g}%)"),
        Condition("dlq_depth", dlq > t.dlq_depth, dlq, f"{dlq} dead letters pending (limit {t.dlq_depth})"),
        Condition("campaign_sends_failed", failed > t.failed_sends, failed,
                  f"{failed} campaign send(s) failed in the last day"),
        Condition("duplicate_upload_spike", dupes > t.duplicate_uploads_per_hour, dupes,
                  f"{dupes} uploads refused as replays in the last hour (limit {t.duplicate_uploads_per_hour})"),
        Condition("contactable_refresh_stale", age_h is not None and age > t.contactable_stale_hours, round(age, 2),
                  f"the contactable set was last refreshed {age:.1f} h ago (limit {t.contactable_stale_hours} h)"),
        Condition("events_in_default_partition", default_rows > t.default_partition_rows, default_rows,
                  f"{default_rows} pipeline event(s) are in the default partition: a month was missing"),
    ]


class AlertSink(dg.ConfigurableResource):
    """Where alerts go: a Slack-compatible webhook (``{"text", "blocks"}``) when ``webhook_url`` is
    set (from ``EQUITY_ALERT_WEBHOOK_URL``), else the log only. De-duplicated in ``alert_state``."""

    webhook_url: str | None = Field(default=None, description="Incoming-webhook URL (a secret); None logs only")
    repeat_after_minutes: int = Field(default=240, description="A still-firing alert is repeated this often")
    timeout_seconds: float = 10.0
    thresholds: AlertThresholds = Field(default_factory=AlertThresholds)

    def fire(self, conn: psycopg.Connection, key: str, summary: str, value: float | None = None) -> bool:
        """Record ``key`` as firing; notify if it just started or its repeat window passed. True if sent."""
        with conn.transaction():
            row = conn.execute("SELECT firing, notified_at > now() - %s FROM alert_state WHERE alert_key = %s FOR UPDATE",
                               (timedelta(minutes=self.repeat_after_minutes), key)).fetchone()
            started = row is None or not row[0]
            due = started or not row[1]
            conn.execute(
                """INSERT INTO alert_state (alert_key, firing, value, summary, fired_at, notified_at)
                   VALUES (%(key)s, true, %(value)s, %(summary)s, now(), CASE WHEN %(due)s THEN now() END)
                   ON CONFLICT (alert_key) DO UPDATE SET
                       firing = true, value = EXCLUDED.value, summary = EXCLUDED.summary,
                       fired_at = CASE WHEN %(started)s THEN now() ELSE alert_state.fired_at END,
                       notified_at = CASE WHEN %(due)s THEN now() ELSE alert_state.notified_at END,
                       cleared_at = CASE WHEN %(started)s THEN NULL ELSE alert_state.cleared_at END""",
                {"key": key, "value": value, "summary": summary, "started": started, "due": due},
            )
            if due:  # inside the transaction: a failed send rolls the state back, to be retried
                self.send(key, "firing" if started else "still firing", summary)
        return due

    def clear(self, conn: psycopg.Connection, key: str, summary: str) -> bool:
        """Record ``key`` as clear; send one recovery message if it was firing. True if sent."""
        with conn.transaction():
            row = conn.execute("SELECT firing FROM alert_state WHERE alert_key = %s FOR UPDATE", (key,)).fetchone()
            if row is None or not row[0]:
                return False
            conn.execute("""UPDATE alert_state SET firing = false, cleared_at = now(), notified_at = now(), summary = %s
                            WHERE alert_key = %s""", (summary, key))
            self.send(key, "resolved", summary)
        return True

    def apply(self, conn: psycopg.Connection, condition: Condition) -> bool:
        if condition.firing:
            return self.fire(conn, condition.key, condition.summary, condition.value)
        return self.clear(conn, condition.key, condition.summary)

    def send(self, key: str, state: str, summary: str) -> None:
        """Post one message (or log it when no webhook is configured)."""
        icon = {"firing": ":rotating_light:", "still firing": ":rotating_light:", "resolved": ":white_check_mark:"}[state]
        text = f"{icon} [{state.upper()}] {key}: {summary}"
        log.warning("alert %s", text)
        if not self.webhook_url:
            return
        payload = {
            "text": text,
            "blocks": [
                {"type": "section", "text": {"type": "mrkdwn", "text": f"{icon} *{key}* is *{state}*\n{summary}"}},
                {"type": "context", "elements": [{"type": "mrkdwn", "text": f"alert `{key}` · runbook: alerts"}]},
            ],
        }
        try:
            requests.post(self.webhook_url, json=payload, timeout=self.timeout_seconds).raise_for_status()
        except requests.RequestException as exc:  # the URL is a secret: never in a message or a log
            status = getattr(exc.response, "status_code", None)
            raise AlertNotDelivered(f"alert webhook failed: {type(exc).__name__}"
                                    + (f" (HTTP {status})" if status else "")) from None
