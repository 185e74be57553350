"""The feeder's dry run: who a batch date would send to, and why every other contactable lead would not.

It applies the feeder's rules (each active broker with a campaign gets ``daily_cap`` minus what the
date already holds, best ``lead_score`` first, among queued, verified, unsuppressed leads never
sent) in one SELECT inside a READ ONLY transaction: nothing is locked, minted or written. Leads
the 05:30 refresh left out of ``contactable_leads`` are not listed. Where leads tie on the cut-off
score the feeder may pick another of them (it has no tie-breaker); ``cutoff_score`` shows where.
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

import psycopg
from psycopg.rows import dict_row

#: Why a contactable lead is not in the batch, in the order they are tested.
REASONS = ("already_sent", "suppressed", "broker_inactive", "no_campaign", "not_scored", "not_queued",
           "not_verified", "cap")

_PREVIEW_SQL = """
WITH brokers_in AS (
    SELECT b.id AS broker_id, b.active, b.daily_cap,
           coalesce(b.instantly_campaign_id, %(default_campaign)s) AS campaign_id,
           (SELECT count(*) FROM campaign_sends s WHERE s.batch_date = %(batch_date)s AND s.broker_id = b.id) AS used
    FROM brokers b
    WHERE %(broker)s::uuid IS NULL OR b.id = %(broker)s::uuid
), judged AS (
    SELECT l.id AS lead_id, b.broker_id, b.campaign_id, l.lead_score, l.campaign_status::text AS campaign_status,
           greatest(b.daily_cap - b.used, 0) AS room,
           (SELECT cs.batch_date FROM campaign_sends cs WHERE cs.lead_id = l.id) AS sent_on,
           EXISTS (SELECT 1 FROM suppression_list s
                   WHERE s.channel = 'email' AND s.value = l.email
                     AND (s.expires_at IS NULL OR s.expires_at > now())) AS suppressed,
           b.active AS broker_active, l.email_verified
    FROM contactable_leads c
    JOIN leads l ON l.id = c.lead_id
    JOIN brokers_in b ON b.broker_id = l.assigned_broker_id
), reasoned AS (
    SELECT j.*, CASE
        WHEN sent_on IS NOT NULL THEN 'already_sent'
        WHEN suppressed THEN 'suppressed'
        WHEN NOT broker_active THEN 'broker_inactive'
        WHEN campaign_id IS NULL THEN 'no_campaign'
        WHEN campaign_status = 'new' THEN 'not_scored'
        WHEN campaign_status <> 'queued' THEN 'not_queued'
        WHEN NOT email_verified THEN 'not_verified'
    END AS blocked
    FROM judged j
), ranked AS (
    SELECT r.*, CASE WHEN blocked IS NULL THEN
               row_number() OVER (PARTITION BY broker_id, blocked IS NULL ORDER BY lead_score DESC NULLS LAST, lead_id)
           END AS rank
    FROM reasoned r
)
SELECT lead_id, broker_id, campaign_id, lead_score, campaign_status, sent_on, rank, room,
       coalesce(blocked, CASE WHEN rank > room THEN 'cap' END) AS reason,
       min(lead_score) FILTER (WHERE blocked IS NULL AND rank <= room) OVER (PARTITION BY broker_id) AS cutoff_score
FROM ranked
ORDER BY broker_id, rank NULLS LAST, lead_score DESC NULLS LAST, lead_id
"""


def preview_day(
    conn: psycopg.Connection,
    batch_date: date,
    *,
    default_campaign: str | None,
    broker: uuid.UUID | str | None = None,
) -> dict[str, Any]:
    """``{"would_send": [...], "not_sent": [...], "counts": {...}}`` for ``batch_date``; writes nothing."""
    with conn.transaction():
        conn.execute("SET TRANSACTION READ ONLY")
        rows = conn.cursor(row_factory=dict_row).execute(
            _PREVIEW_SQL, {"batch_date": batch_date, "default_campaign": default_campaign,
                           "broker": str(broker) if broker else None},
        ).fetchall()
    would_send, not_sent = [], []
    for row in rows:
        item = {
            "lead_id": str(row["lead_id"]),
            "broker_id": str(row["broker_id"]),
            "lead_score": float(row["lead_score"]) if row["lead_score"] is not None else None,
        }
        if row["reason"] is None:
            would_send.append(item | {"campaign_id": row["campaign_id"], "rank": row["rank"]})
        else:
            item["reason"] = row["reason"]
            if row["reason"] == "cap":
                item |= {"rank": row["rank"], "room": row["room"],
                         "cutoff_score": float(row["cutoff_score"]) if row["cutoff_score"] is not None else None}
            elif row["reason"] == "already_sent":
                item["batch_date"] = row["sent_on"].isoformat()
            elif row["reason"] == "not_queued":
                item["campaign_status"] = row["campaign_status"]
            not_sent.append(item)
    counts = {reason: sum(1 for r in not_sent if r["reason"] == reason) for reason in REASONS}
    return {"batch_date": batch_date.isoformat(), "broker": str(broker) if broker else None,
            "would_send": would_send, "not_sent": not_sent,
            "counts": {"would_send": len(would_send), **counts}}
