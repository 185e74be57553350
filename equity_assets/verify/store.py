"""The database side of `verified_leads`: claim due leads, write verdicts, fold MAK twins, dead-letter.

All writes for a chunk are a handful of set-based statements over two temp tables filled by
COPY; the only per-row work is folding leads that turn out to share a MAK (rare).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import groupby
from typing import Any
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb

from equity_assets.db.locks import set_lock_timeout
from equity_assets.observe.events import DeadLetter, Stage, upsert_dead_letters
from equity_assets.verify.router import Unrouted
from equity_assets.verify.verdict import LeadToVerify, LeadVerdict

STAGE = Stage.VERIFIED_LEADS
#: Statuses whose leads are (re-)verified; matches the partial index leads_verification_due_idx.
_DUE_STATUSES = "('new', 'queued', 'active', 'replied')"


def dlq_ref(lead_id: str) -> str:
    """`pipeline_dlq.source_ref` of a lead."""
    return f"lead:{lead_id}"


# ---------------------------------------------------------------------------------------------
# claiming work
# ---------------------------------------------------------------------------------------------

# A lead that just failed waits out the back-off instead of failing again every tick.
_NOT_BACKING_OFF = f"""
    NOT EXISTS (SELECT 1 FROM pipeline_dlq d
                WHERE d.stage = %(stage)s AND d.status = 'pending' AND d.source_ref = 'lead:' || l.id
                  AND d.updated_at > now() - make_interval(mins => %(backoff_minutes)s))"""
_STALE = "l.verified_at < now() - make_interval(days => %(max_age_days)s)"
_LEAD_COLUMNS = """l.id::text, l.property_address, l.property_unit, l.property_city, l.property_state,
       l.property_zip, l.county, l.apn, l.first_name, l.last_name, l.email, l.phone, l.mak"""

# Two keyset scans in the order of leads_verification_due_idx, so a claim reads one chunk of the
# index instead of sorting every due lead (an OR of both conditions cannot use the index order).
_CLAIM_NEVER_VERIFIED = f"""
SELECT {_LEAD_COLUMNS}, l.verified_at
FROM leads l
WHERE l.campaign_status IN {_DUE_STATUSES}
  AND l.verified_at IS NULL AND l.id > %(after_id)s::uuid
  AND {_NOT_BACKING_OFF}
ORDER BY l.verified_at NULLS FIRST, l.id
LIMIT %(limit)s
FOR UPDATE SKIP LOCKED"""

_CLAIM_STALE = f"""
SELECT {_LEAD_COLUMNS}, l.verified_at
FROM leads l
WHERE l.campaign_status IN {_DUE_STATUSES}
  AND {_STALE} AND (l.verified_at, l.id) > (%(after_verified_at)s::timestamptz, %(after_id)s::uuid)
  AND {_NOT_BACKING_OFF}
ORDER BY l.verified_at NULLS FIRST, l.id
LIMIT %(limit)s
FOR UPDATE SKIP LOCKED"""

_COUNT_DUE = f"""
SELECT count(*) FROM (
    (SELECT 1 FROM leads l
     WHERE l.campaign_status IN {_DUE_STATUSES} AND l.verified_at IS NULL AND {_NOT_BACKING_OFF}
     LIMIT %(cap)s)
    UNION ALL
    (SELECT 1 FROM leads l
     WHERE l.campaign_status IN {_DUE_STATUSES} AND {_STALE} AND {_NOT_BACKING_OFF}
     LIMIT %(cap)s)
) due"""

_FIRST_UUID = "00000000-0000-0000-0000-000000000000"


@dataclass
class DueCursor:
    """Where a run's next claim starts: never-verified leads by id, then stale ones by (verified_at, id).

    A run moves forward only, so a lead it dead-letters (still due) is not claimed again by the
    same run, and every claim reads just one chunk of the due index.
    """

    stale: bool = False
    after_id: str = _FIRST_UUID
    after_verified_at: datetime | None = None
    finished: bool = False


def claim_due_leads(
    conn: psycopg.Connection,
    cursor: DueCursor,
    *,
    limit: int,
    max_age_days: int,
    backoff_minutes: int,
) -> list[LeadToVerify]:
    """Lock up to ``limit`` due leads (never verified first, then the stalest) for this transaction.

    SKIP LOCKED lets a concurrent run take the next leads instead of verifying these twice.
    Advances ``cursor``; an empty list means this run has seen every due lead.
    """
    params = {"limit": limit, "max_age_days": max_age_days, "backoff_minutes": backoff_minutes, "stage": STAGE}
    set_lock_timeout(conn)
    while not cursor.finished:
        if cursor.stale:
            rows = conn.execute(
                _CLAIM_STALE,
                {**params, "after_id": cursor.after_id, "after_verified_at": cursor.after_verified_at or "-infinity"},
            ).fetchall()
        else:
            rows = conn.execute(_CLAIM_NEVER_VERIFIED, {**params, "after_id": cursor.after_id}).fetchall()
        if rows:
            cursor.after_id, cursor.after_verified_at = rows[-1][0], rows[-1][-1]
            return [LeadToVerify(*row[:-1]) for row in rows]
        if cursor.stale:
            cursor.finished = True
        else:
            cursor.stale, cursor.after_id = True, _FIRST_UUID
    return []


def count_due_leads(conn: psycopg.Connection, *, max_age_days: int, backoff_minutes: int, cap: int = 1) -> int:
    """How many leads are due, counting at most about ``cap`` of each kind (cheap "is there work?")."""
    return conn.execute(
        _COUNT_DUE, {"max_age_days": max_age_days, "backoff_minutes": backoff_minutes, "cap": cap, "stage": STAGE}
    ).fetchone()[0]


# ---------------------------------------------------------------------------------------------
# writing verdicts
# ---------------------------------------------------------------------------------------------

_RESULT_COLUMNS = (
    ("lead_id", "uuid"), ("provider", "text"), ("matched", "boolean"), ("mak", "text"), ("birth_month", "date"),
    ("address_codes", "text[]"), ("email_codes", "text[]"), ("phone_codes", "text[]"),
    ("new_email", "text"), ("new_phone", "text"), ("alt_emails", "text[]"), ("alt_phones", "text[]"),
    ("dnc_phones", "text[]"), ("litigator", "boolean"), ("deceased", "boolean"),
    ("melissa_payload", "jsonb"), ("provider_payload", "jsonb"),
)
_SUPPRESSION_COLUMNS = (("lead_id", "uuid"), ("channel", "text"), ("value", "text"), ("code", "text"))

_SUPPRESS = """
INSERT INTO suppression_list AS s (channel, value, reason, source, lead_id)
SELECT DISTINCT ON (channel, value) channel, value, reason, 'provider', lead_id
FROM (
    SELECT f.channel, f.value, f.code || ': ' || coalesce(c.meaning, 'provider flag') AS reason, f.lead_id
    FROM verify_suppressions f LEFT JOIN verification_code_map c ON c.code = f.code
    UNION ALL
    -- codes on the lead's own channels that forbid them (ES06 spamtrap, BP02 DNC, ...)
    SELECT c.channel, v.value, c.code || ': ' || c.meaning, r.lead_id
    FROM verify_results r
    JOIN leads l ON l.id = r.lead_id
    CROSS JOIN LATERAL (VALUES ('email', coalesce(l.email, r.new_email), r.email_codes),
                               ('phone', coalesce(l.phone, r.new_phone), r.phone_codes)) AS v(channel, value, codes)
    JOIN verification_code_map c ON c.channel = v.channel AND c.suppress AND c.code = ANY (v.codes)
    WHERE v.value IS NOT NULL
) found
ORDER BY channel, value, lead_id
ON CONFLICT (channel, value) DO UPDATE
    SET reason = EXCLUDED.reason, source = EXCLUDED.source, expires_at = NULL
    WHERE s.expires_at IS NOT NULL AND s.expires_at <= now()  -- only an expired entry is renewed
"""

_APPLY = """
WITH usable_codes AS MATERIALIZED (
    -- the code map is asked once per distinct code list, not once per lead
    SELECT channel, codes, channel_usable(codes, channel) AS usable
    FROM (SELECT DISTINCT 'email' AS channel, email_codes AS codes FROM verify_results
          UNION
          SELECT DISTINCT 'phone', phone_codes FROM verify_results) d
), joined AS (
    SELECT r.*, l.campaign_status,
           coalesce(l.email, r.new_email) AS final_email,
           coalesce(l.phone, r.new_phone) AS final_phone,
           l.litigator OR r.litigator AS final_litigator,
           l.deceased OR r.deceased AS final_deceased,
           array_union(l.dnc_phones, r.dnc_phones) AS final_dnc,
           coalesce(r.birth_month, l.owner_birth_month) AS owner_birth_month,
           e.usable AS email_codes_usable, p.usable AS phone_codes_usable
    FROM verify_results r
    JOIN leads l ON l.id = r.lead_id
    JOIN usable_codes e ON e.channel = 'email' AND e.codes = r.email_codes
    JOIN usable_codes p ON p.channel = 'phone' AND p.codes = r.phone_codes
), flagged AS MATERIALIZED (
    SELECT j.*,
           j.final_email IS NOT NULL
           AND j.email_codes_usable
           AND NOT EXISTS (SELECT 1 FROM suppression_list s
                           WHERE s.channel = 'email' AND s.value = j.final_email
                             AND (s.expires_at IS NULL OR s.expires_at > now())) AS email_verified,
           j.final_phone IS NOT NULL
           AND j.phone_codes_usable
           AND NOT j.final_litigator AND NOT j.final_deceased
           AND NOT (j.final_phone = ANY (j.final_dnc))
           AND NOT EXISTS (SELECT 1 FROM suppression_list s
                           WHERE s.channel = 'phone' AND s.value = j.final_phone
                             AND (s.expires_at IS NULL OR s.expires_at > now())) AS phone_verified
    FROM joined j
)
UPDATE leads l SET
    mak = CASE WHEN l.mak IS NULL AND s.mak_owner IS NULL AND NOT l.broker_created THEN s.mak ELSE l.mak END,
    email = s.final_email,
    phone = s.final_phone,
    alt_emails = array_remove(array_union(l.alt_emails, s.alt_emails), s.final_email),
    alt_phones = array_remove(array_union(l.alt_phones, s.alt_phones), s.final_phone),
    dnc_phones = s.final_dnc,
    address_codes = s.address_codes,
    email_codes = s.email_codes,
    phone_codes = s.phone_codes,
    owner_birth_month = s.owner_birth_month,
    litigator = s.final_litigator,
    deceased = s.final_deceased,
    email_verified = s.email_verified,
    phone_verified = s.phone_verified,
    verification_provider = s.provider,
    verified_at = now(),
    melissa_payload = coalesce(s.melissa_payload, l.melissa_payload),
    provider_payload = coalesce(s.provider_payload, l.provider_payload),
    campaign_status = CASE
        -- a known litigator or a deceased owner is never contacted
        WHEN l.campaign_status IN ('new', 'queued', 'active') AND (s.final_litigator OR s.final_deceased)
            THEN 'do_not_contact'::campaign_status
        -- a queued lead that lost its last usable channel waits again
        WHEN l.campaign_status = 'queued' AND NOT (s.email_verified OR s.phone_verified)
            THEN 'new'::campaign_status
        ELSE l.campaign_status END
FROM flagged s
WHERE l.id = s.lead_id
RETURNING l.email_verified, l.phone_verified, s.provider, s.matched
"""

# A MAK the provider returned that another lead owns (or that an earlier lead of this chunk
# takes) is not written; the lead is folded into the owner instead. Broker-created leads take
# no MAK and are never folded (they stay outside pipeline identity).
_MARK_MAK_OWNED_ELSEWHERE = """
UPDATE verify_results r SET mak_owner = o.id
FROM leads l, leads o
WHERE l.id = r.lead_id AND l.mak IS NULL AND r.mak IS NOT NULL
  AND o.mak = r.mak AND o.id <> r.lead_id AND NOT l.broker_created AND NOT o.broker_created
"""
_MARK_MAK_TWINS_IN_CHUNK = """
UPDATE verify_results r SET mak_owner = t.first_id
FROM (SELECT r2.mak, (array_agg(r2.lead_id ORDER BY r2.lead_id))[1] AS first_id
      FROM verify_results r2 JOIN leads l ON l.id = r2.lead_id
      WHERE r2.mak IS NOT NULL AND l.mak IS NULL AND r2.mak_owner IS NULL AND NOT l.broker_created
      GROUP BY r2.mak HAVING count(*) > 1) t
WHERE r.mak = t.mak AND r.mak_owner IS NULL AND r.lead_id <> t.first_id
"""

_RESOLVE_DLQ = """
UPDATE pipeline_dlq SET status = 'resolved'
WHERE stage = %(stage)s AND status = 'pending'
  AND source_ref IN (SELECT 'lead:' || lead_id FROM verify_results)
"""


@dataclass(frozen=True)
class WriteCounts:
    """What writing one chunk's verdicts did."""

    verified: int
    usable_email: int
    usable_phone: int
    no_match: int  # written with every provider's "no match"
    by_provider: dict[str, int]  # provider that answered -> leads
    suppressed: int  # suppression_list rows added (or renewed)
    merged_by_mak: int
    mak_conflicts: int
    survivors: tuple[str, ...]  # leads that absorbed another one
    held_back: int  # left unwritten: their MAK twin is locked by another chunk of this run


#: How far back verification looks for its own recent decisions (its check, the sweep below).
RECENT_HOURS = 24

# A lead marked usable can lose its channel later to another lead's verdict: the same e-mail is a
# deceased owner's, the same phone is on a DNC list. The chunk that writes the suppression cannot
# update that lead (another open chunk may hold it locked), so each run ends with this sweep: a
# recently verified lead whose channel was suppressed *after* its verification stops being usable.
# A suppression that existed when the lead was judged is left alone: that would be a wrong verdict,
# for `suppressed_channels_are_not_usable` to catch, not to hide.
_WITHDRAW_LATER_SUPPRESSED = """
WITH recent AS MATERIALIZED (
    -- a suppression later than a verification of the last day is itself from the last day
    SELECT channel, value, created_at FROM suppression_list
    WHERE created_at > now() - make_interval(hours => %(hours)s) AND (expires_at IS NULL OR expires_at > now())
), later AS MATERIALIZED (
    -- from the recent suppressions to the leads they name: by the e-mail index; phones, which
    -- have none, by one hash join over the leads verified in the window
    SELECT id, bool_or(channel = 'email') AS email_off, bool_or(channel = 'phone') AS phone_off
    FROM (SELECT l.id, r.channel FROM recent r JOIN leads l ON l.email = r.value
          WHERE r.channel = 'email' AND l.email_verified AND r.created_at > l.verified_at
          UNION ALL
          SELECT l.id, r.channel FROM recent r JOIN leads l ON l.phone = r.value
          WHERE r.channel = 'phone' AND l.phone_verified AND r.created_at > l.verified_at
            AND l.verified_at > now() - make_interval(hours => %(hours)s)) hit
    GROUP BY id
), free AS (
    -- a lead another run holds is skipped, never waited for (no deadlock); the next run sweeps it
    SELECT l.id FROM leads l JOIN later x USING (id) FOR UPDATE OF l SKIP LOCKED
)
UPDATE leads l SET
    email_verified = l.email_verified AND NOT x.email_off,
    phone_verified = l.phone_verified AND NOT x.phone_off,
    -- a queued lead that lost its last usable channel waits again, as in a verdict
    campaign_status = CASE WHEN l.campaign_status = 'queued'
                                AND NOT ((l.email_verified AND NOT x.email_off) OR (l.phone_verified AND NOT x.phone_off))
                           THEN 'new'::campaign_status ELSE l.campaign_status END
FROM later x JOIN free USING (id)
WHERE l.id = x.id AND l.verified_at > now() - make_interval(hours => %(hours)s)
  AND l.campaign_status IN ('new', 'queued', 'active', 'replied')
"""


def withdraw_later_suppressed(conn: psycopg.Connection) -> int:
    """Usable flags withdrawn from recently verified leads whose channel was suppressed since."""
    return conn.execute(_WITHDRAW_LATER_SUPPRESSED, {"hours": RECENT_HOURS}).rowcount


def write_verdicts(
    conn: psycopg.Connection,
    verdicts: Sequence[LeadVerdict],
    *,
    run_id: str,
    busy: Collection[str] = (),
) -> WriteCounts:
    """Write verdicts of claimed leads: suppressions, lead columns, usable flags, MAK folds (scoring is `scored_leads`'s).

    ``busy``: leads other open transactions of this run hold locked (see :func:`_hold_back_twins_of`).
    """
    if not verdicts:
        return WriteCounts(0, 0, 0, 0, {}, 0, 0, 0, (), 0)
    _load_temp_tables(conn, verdicts)
    conn.execute(_MARK_MAK_OWNED_ELSEWHERE)
    held_back = _hold_back_twins_of(conn, busy)
    conn.execute(_MARK_MAK_TWINS_IN_CHUNK)
    suppressed = conn.execute(_SUPPRESS).rowcount
    flags = conn.execute(_APPLY).fetchall()
    conn.execute(_RESOLVE_DLQ, {"stage": STAGE})
    merged, conflicts, survivors = fold_mak_twins(conn, source_ref=f"run:{run_id}")
    conn.execute("DROP TABLE verify_results, verify_suppressions")
    return WriteCounts(
        verified=len(flags),
        usable_email=sum(1 for email_ok, *_ in flags if email_ok),
        usable_phone=sum(1 for _, phone_ok, *_ in flags if phone_ok),
        no_match=sum(1 for *_, matched in flags if not matched),
        by_provider=dict(Counter(provider for _, _, provider, _ in flags)),
        suppressed=suppressed,
        merged_by_mak=merged,
        mak_conflicts=conflicts,
        survivors=tuple(survivors),
        held_back=held_back,
    )


def _hold_back_twins_of(conn: psycopg.Connection, busy: Collection[str]) -> int:
    """Drop verdicts whose MAK belongs to a lead another open chunk of this run holds locked.

    Folding into that lead would wait on our own transaction. Such a lead (rare) is left
    unwritten: it stays due and the next run verifies (and folds) it.
    """
    if not busy:
        return 0
    held = conn.execute(
        "DELETE FROM verify_results WHERE mak_owner = ANY (%s::uuid[]) RETURNING lead_id", (list(busy),)
    ).fetchall()
    if held:
        conn.execute("DELETE FROM verify_suppressions WHERE lead_id = ANY (%s::uuid[])", ([row[0] for row in held],))
    return len(held)


def _load_temp_tables(conn: psycopg.Connection, verdicts: Sequence[LeadVerdict]) -> None:
    """COPY the verdicts (and the suppressions they call for) into transaction-local tables."""
    conn.execute(
        "CREATE TEMP TABLE verify_results ({}, mak_owner uuid, PRIMARY KEY (lead_id)) ON COMMIT DROP".format(
            ", ".join(f"{name} {typ}" for name, typ in _RESULT_COLUMNS)
        )
    )
    conn.execute(
        "CREATE TEMP TABLE verify_suppressions ({}) ON COMMIT DROP".format(
            ", ".join(f"{name} {typ}" for name, typ in _SUPPRESSION_COLUMNS)
        )
    )
    with conn.cursor() as cur:
        names = ", ".join(name for name, _ in _RESULT_COLUMNS)
        with cur.copy(f"COPY verify_results ({names}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types([typ for _, typ in _RESULT_COLUMNS])
            for v in verdicts:
                copy.write_row(_result_row(v))
        with cur.copy("COPY verify_suppressions (lead_id, channel, value, code) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types([typ for _, typ in _SUPPRESSION_COLUMNS])
            for v in verdicts:
                for s in v.suppressions:
                    copy.write_row((UUID(v.lead_id), s.channel, s.value, s.code))
    # temp tables are never auto-analyzed; without statistics the planner may scan all leads
    conn.execute("ANALYZE verify_results, verify_suppressions")


def _result_row(v: LeadVerdict) -> tuple[Any, ...]:
    return (
        UUID(v.lead_id), v.provider, v.matched, v.mak, v.birth_month,
        list(v.address_codes), list(v.email_codes), list(v.phone_codes),
        v.new_email, v.new_phone, list(v.alt_emails), list(v.alt_phones), list(v.dnc_phones),
        v.litigator, v.deceased,
        Jsonb(v.melissa_payload) if v.melissa_payload is not None else None,
        Jsonb(v.provider_payload) if v.provider_payload is not None else None,
    )


def fold_mak_twins(conn: psycopg.Connection, *, source_ref: str) -> tuple[int, int, list[str]]:
    """Fold every lead whose MAK belongs to another lead into that lead (dedupe's merge rules).

    Returns (leads folded away, clashes recorded instead, surviving lead ids).
    """
    rows = conn.execute(
        "SELECT mak, lead_id::text, mak_owner::text FROM verify_results WHERE mak_owner IS NOT NULL ORDER BY mak, lead_id"
    ).fetchall()
    merged = conflicts = 0
    survivors: list[str] = []
    for mak, group in groupby(rows, key=lambda row: row[0]):
        members = list(group)
        survivor = members[0][2]
        for _, lead_id, _ in members:
            result = conn.execute("SELECT fold_lead(%s, %s, 'mak', %s)::text", (lead_id, survivor, source_ref)).fetchone()[0]
            if result is None:
                conflicts += 1  # both have outreach history: recorded in lead_key_conflicts
            else:
                merged += 1
                survivor = result
        # the survivor may be a lead of this chunk whose own MAK was held back
        conn.execute(
            "UPDATE leads SET mak = %(mak)s WHERE id = %(id)s AND mak IS NULL"
            " AND NOT EXISTS (SELECT 1 FROM leads WHERE mak = %(mak)s)",
            {"mak": mak, "id": survivor},
        )
        survivors.append(survivor)
    return merged, conflicts, survivors


# ---------------------------------------------------------------------------------------------
# dead letters
# ---------------------------------------------------------------------------------------------

def dead_letter(conn: psycopg.Connection, unrouted: Sequence[Unrouted], *, run_id: str) -> int:
    """Record leads no provider could verify; they stay due and are retried after the back-off.

    The payload names the lead and each provider's failure, never the lead's contact data.
    """
    letters = [
        DeadLetter(u.reason, dlq_ref(u.lead.id), payload={"lead_id": u.lead.id, "errors": u.errors}) for u in unrouted
    ]
    return upsert_dead_letters(conn, STAGE, letters, run_id=run_id)
