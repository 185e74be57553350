"""Probable duplicates the exact keys do not merge, kept for a person to decide, and the manual
merge that settles one.

Blocking: two leads can only be the same property when they share the state, the house number and
the unit, and the ZIP or the city. Inside a block the street names are compared with rapidfuzz;
pairs scoring at least `MIN_SCORE` are listed in `lead_duplicate_candidates` with the score and
the reason. Nothing here ever merges on its own.
"""

from __future__ import annotations

from typing import Any

import psycopg
from rapidfuzz import fuzz

MIN_SCORE = 85.0

# Leads this upload touched, against every pipeline lead in the same block.
BLOCK_PAIRS_SQL = """
WITH touched AS (
    SELECT l.id, l.addr_std, l.addr_city, l.property_state, l.property_zip,
           split_part(l.addr_std, ' ', 1) AS house, split_part(l.addr_std, '|', 2) AS unit
    FROM leads l
    WHERE l.id IN (SELECT lead_id FROM lead_sources WHERE upload_id = %(u)s)
      AND l.addr_std IS NOT NULL AND NOT l.broker_created)
SELECT t.id, t.addr_std, o.id, o.addr_std, t.property_zip, o.property_zip, t.addr_city, t.property_state
FROM touched t
JOIN leads o ON o.property_state = t.property_state AND o.id <> t.id AND NOT o.broker_created
            AND o.addr_std IS NOT NULL
            AND split_part(o.addr_std, ' ', 1) = t.house AND split_part(o.addr_std, '|', 2) = t.unit
            AND (o.property_zip = t.property_zip OR o.addr_city = t.addr_city)
WHERE NOT EXISTS (SELECT 1 FROM lead_duplicate_candidates c
                  WHERE c.lead_id = least(t.id, o.id) AND c.other_lead_id = greatest(t.id, o.id))"""


def street_name(std: str) -> str:
    """The street part of a standardized line (no house number, no unit)."""
    line = std.split("|", 1)[0]
    return line.split(" ", 1)[1] if " " in line else line


def score_pair(a_std: str, b_std: str) -> float:
    """Similarity of two street names, 0-100 (token order and a missing word count for little)."""
    a, b = street_name(a_std), street_name(b_std)
    return max(fuzz.ratio(a, b), fuzz.token_set_ratio(a, b) - 5.0)


def find_duplicate_candidates(conn: psycopg.Connection, upload_id: str) -> int:
    """List this upload's probable duplicates; returns how many new pairs were recorded."""
    rows = []
    for a, a_std, b, b_std, a_zip, b_zip, city, state in conn.execute(BLOCK_PAIRS_SQL, {"u": upload_id}):
        score = score_pair(a_std, b_std)
        if score < MIN_SCORE:
            continue
        place = f"ZIP {a_zip}" if a_zip and a_zip == b_zip else f"{city}, {state}"
        why = "ZIPs differ" if a_std == b_std else "street names differ"
        reason = (f"same house number and unit in {place}; {why}: "
                  f"{a_std.split('|')[0]!r} vs {b_std.split('|')[0]!r}")
        first, second = sorted((a, b))
        rows.append((first, second, round(score, 2), reason))
    if not rows:
        return 0
    with conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO lead_duplicate_candidates (lead_id, other_lead_id, score, reason)
               VALUES (%s, %s, %s, %s) ON CONFLICT (lead_id, other_lead_id) DO NOTHING""",
            list({(r[0], r[1]): r for r in rows}.values()),
        )
    return len(rows)


def list_candidates(conn: psycopg.Connection, status: str | None = "open", limit: int = 200) -> list[dict[str, Any]]:
    """Candidate pairs with both leads' addresses, best score first."""
    rows = conn.execute(
        """SELECT c.id, c.lead_id, c.other_lead_id, c.score, c.reason, c.status, c.decided_by,
                  concat_ws(', ', a.property_address, a.property_city, a.property_state, a.property_zip),
                  concat_ws(', ', b.property_address, b.property_city, b.property_state, b.property_zip)
           FROM lead_duplicate_candidates c
           LEFT JOIN leads a ON a.id = c.lead_id LEFT JOIN leads b ON b.id = c.other_lead_id
           WHERE %(s)s::text IS NULL OR c.status = %(s)s
           ORDER BY c.score DESC, c.id LIMIT %(n)s""",
        {"s": status, "n": limit},
    ).fetchall()
    keys = ("id", "lead_id", "other_lead_id", "score", "reason", "status", "decided_by", "address", "other_address")
    out = [dict(zip(keys, row)) for row in rows]
    for pair in out:
        pair.update(lead_id=str(pair["lead_id"]), other_lead_id=str(pair["other_lead_id"]), score=float(pair["score"]))
    return out


def merge_leads(conn: psycopg.Connection, keep: str, other: str, by: str) -> dict[str, Any]:
    """Fold lead `other` into `keep` with the pipeline's merge rules, recording who decided it.

    A lead that already has outreach history is never deleted: the roles swap, and when both have
    history nothing is merged (the clash is recorded). The survivor's address key is re-derived.
    """
    if not by:
        raise ValueError("a manual merge must say who did it")
    row = conn.execute("SELECT to_jsonb(l) FROM leads l WHERE id = %s", (other,)).fetchone()
    if row is None or conn.execute("SELECT 1 FROM leads WHERE id = %s", (keep,)).fetchone() is None:
        raise LookupError(f"lead {keep if row else other} does not exist")
    survivor = conn.execute("SELECT fold_lead(%s, %s, 'address', %s)", (other, keep, f"manual:{by}")).fetchone()[0]
    if survivor is None:
        return {"merged": False, "reason": "both leads have outreach history; recorded in lead_key_conflicts"}
    merged = other if str(survivor) == keep else keep
    conn.execute(
        """UPDATE leads SET addr_hash = lead_address_hash(addr_std, addr_city, property_state, property_zip)
           WHERE id = %s AND addr_std IS NOT NULL
             AND NOT EXISTS (SELECT 1 FROM leads o WHERE o.id <> %s AND NOT o.broker_created
                             AND o.addr_hash = lead_address_hash(leads.addr_std, leads.addr_city,
                                                                 leads.property_state, leads.property_zip))""",
        (survivor, survivor),
    )
    conn.execute("INSERT INTO lead_manual_merges (kept_id, merged_id, merged_by, merged_row) VALUES (%s, %s, %s, %s)",
                 (survivor, merged, by, psycopg.types.json.Jsonb(row[0])))
    conn.execute(
        """UPDATE lead_duplicate_candidates SET status = 'merged', decided_by = %s, decided_at = now()
           WHERE (lead_id, other_lead_id) = (least(%s::uuid, %s::uuid), greatest(%s::uuid, %s::uuid))""",
        (by, keep, other, keep, other),
    )
    return {"merged": True, "kept_id": str(survivor), "merged_id": merged, "merged_by": by}
