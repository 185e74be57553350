"""Address resolution around the merge: before it, a staged row whose addr_hash matches no lead
takes the addr_hash of the property its address names (same street line in the ZIP or city, or
the line without its street type when that is unambiguous); after it, leads a merge completed
(a ZIP, a street type) get the addr_hash of their stored address.
"""

from __future__ import annotations

import psycopg


# Where two address identities may be the same property: no contradicting state, and the same
# ZIP, or the same city + state with one side lacking a ZIP.
SAME_PLACE = """({c}.st = {p}.st OR {c}.st IS NULL OR {p}.st IS NULL)
    AND ({c}.zip = {p}.zip OR ({c}.city = {p}.city AND {c}.st = {p}.st AND ({c}.zip IS NULL OR {p}.zip IS NULL)))"""


def candidates_sql(p: str, c: str, extra: str = "TRUE") -> str:
    """(p.key, c.h, kind) for every identity of table `c` that may be the property of a row of `p`.

    kind `exact`: the same street line; `loose`: one line is the other without its street type
    (7946 S ASHLAND = 7946 S ASHLAND AVE); `other`: the same name and number with another street
    type (ASHLAND AVE vs ASHLAND ST) — never chosen, but it makes a loose match ambiguous.
    """
    place = SAME_PLACE.format(c="c", p="p")
    return f"""
        SELECT p.key, c.h, 'exact' AS kind FROM {p} p JOIN {c} c ON c.std = p.std WHERE {place} AND {extra}
        UNION ALL
        SELECT p.key, c.h, 'loose' FROM {p} p JOIN {c} c ON c.bare = p.std WHERE c.std <> p.std AND {place} AND {extra}
        UNION ALL
        SELECT p.key, c.h, 'loose' FROM {p} p JOIN {c} c ON c.std = p.bare WHERE c.std <> p.std AND {place} AND {extra}
        UNION ALL
        SELECT p.key, c.h, 'other' FROM {p} p JOIN {c} c ON c.bare = p.bare
        WHERE c.std <> p.std AND c.std <> c.bare AND p.std <> p.bare AND {place} AND {extra}"""


# One exact candidate wins; otherwise a single loose candidate with no competitor.
CHOOSE = """
    SELECT key, CASE WHEN count(DISTINCT h) FILTER (WHERE kind = 'exact') = 1
                     THEN min(h) FILTER (WHERE kind = 'exact') ELSE min(h) END AS h
    FROM ({candidates}) x
    GROUP BY key
    HAVING count(DISTINCT h) FILTER (WHERE kind = 'exact') = 1
        OR (count(DISTINCT h) FILTER (WHERE kind = 'exact') = 0 AND count(DISTINCT h) = 1
            AND bool_and(kind = 'loose'))"""


def resolve_address_identity(conn: psycopg.Connection, upload_id: str) -> int:
    """Give each staged row whose addr_hash matches no lead the addr_hash of the property it names.

    A row without a ZIP names the same property as a lead (or another row) with the same street
    line in the same city + state; a row whose line lacks the street type names the one property
    with that name and number in its ZIP / city, and none when two exist (7946 S ASHLAND AVE and
    7946 S ASHLAND ST make a bare 7946 S ASHLAND ambiguous). Existing leads are tried first; then,
    inside the upload, less complete identities adopt the one more complete identity they match
    (a ZIP beats none, a street type beats none). Returns the number of rows re-keyed.
    """
    conn.execute(
        """CREATE TEMP TABLE addr_pending ON COMMIT DROP AS
           SELECT s.row_number AS key, s.addr_hash AS h, s.addr_std AS std, s.addr_bare AS bare,
                  s.addr_city AS city, s.property_state AS st, s.property_zip AS zip
           FROM leads_staging s
           WHERE s.upload_id = %(u)s AND s.addr_bare IS NOT NULL AND s.addr_hash IS NOT NULL
             AND NOT EXISTS (SELECT 1 FROM leads l WHERE l.addr_hash = s.addr_hash AND NOT l.broker_created)
             AND NOT EXISTS (SELECT 1 FROM lead_sources ls
                             WHERE ls.upload_id = s.upload_id AND ls.row_number = s.row_number)""",
        {"u": upload_id},
    )
    # 1. against existing leads
    conn.execute(
        """CREATE TEMP VIEW addr_leads AS
           SELECT addr_hash AS h, addr_std AS std, addr_bare AS bare, addr_city AS city,
                  property_state AS st, property_zip AS zip
           FROM leads WHERE addr_bare IS NOT NULL AND addr_hash IS NOT NULL AND NOT broker_created"""
    )
    conn.execute(f"CREATE TEMP TABLE addr_alias ON COMMIT DROP AS {CHOOSE.format(candidates=candidates_sql('addr_pending', 'addr_leads'))}")
    # 2. inside the upload, among rows still unmatched: rank = has ZIP (2) + has street type (1)
    # Only incomplete identities (usually few) look for a partner, among the identities that share
    # a line with one of them: no pass over every pair of a million rows.
    conn.execute(
        """CREATE TEMP TABLE addr_todo ON COMMIT DROP AS
           SELECT DISTINCT h AS key, h, std, bare, city, st, zip,
                  (zip IS NOT NULL)::int * 2 + (std <> bare)::int AS rank
           FROM addr_pending p
           WHERE (zip IS NULL OR std = bare) AND NOT EXISTS (SELECT 1 FROM addr_alias a WHERE a.key = p.key)"""
    )
    conn.execute(
        """CREATE TEMP TABLE addr_ids ON COMMIT DROP AS
           SELECT DISTINCT h AS key, h, std, bare, city, st, zip,
                  (zip IS NOT NULL)::int * 2 + (std <> bare)::int AS rank
           FROM addr_pending p
           WHERE NOT EXISTS (SELECT 1 FROM addr_alias a WHERE a.key = p.key)
             AND (std IN (SELECT std FROM addr_todo UNION SELECT bare FROM addr_todo)
                  OR bare IN (SELECT std FROM addr_todo UNION SELECT bare FROM addr_todo))"""
    )
    conn.execute("ANALYZE addr_ids")
    in_batch = candidates_sql("addr_todo", "addr_ids", "c.h <> p.h AND c.rank > p.rank")
    conn.execute(f"CREATE TEMP TABLE addr_map ON COMMIT DROP AS {CHOOSE.format(candidates=in_batch)}")
    for _ in range(3):  # follow chains (no ZIP, no type -> ZIP, no type -> ZIP and type)
        if not conn.execute("""UPDATE addr_map m SET h = n.h FROM addr_map n
                               WHERE m.h = n.key AND m.h <> n.h""").rowcount:
            break
    conn.execute(
        """INSERT INTO addr_alias (key, h)
           SELECT p.key, m.h FROM addr_pending p JOIN addr_map m ON m.key = p.h
           WHERE NOT EXISTS (SELECT 1 FROM addr_alias a WHERE a.key = p.key)"""
    )
    changed = conn.execute(
        """UPDATE leads_staging s SET addr_hash = a.h FROM addr_alias a
           WHERE s.upload_id = %s AND s.row_number = a.key AND s.addr_hash IS DISTINCT FROM a.h""",
        (upload_id,),
    ).rowcount
    conn.execute("DROP VIEW addr_leads")
    conn.execute("DROP TABLE addr_pending, addr_alias, addr_todo, addr_ids, addr_map")
    return changed


def rekey_touched_leads(conn: psycopg.Connection, upload_id: str) -> int:
    """Re-derive addr_hash from the stored address of every lead this upload merged into (a merge
    may have given a lead its first ZIP or its street type), unless another lead holds that key."""
    # the touched ids first, counted: the upload's lineage may be committed by the merge's insert
    # workers while this runs, so lead_sources' statistics can say anything about it
    conn.execute(
        """CREATE TEMP TABLE rekey_touched ON COMMIT DROP AS
           SELECT DISTINCT lead_id AS id FROM lead_sources WHERE upload_id = %s AND matched_on <> 'new'""",
        (upload_id,),
    )
    conn.execute("ANALYZE rekey_touched")
    changed = conn.execute(
        """WITH touched AS MATERIALIZED (
               SELECT l.id, l.addr_hash AS stored,
                      lead_address_hash(l.addr_std, l.addr_city, l.property_state, l.property_zip) AS h
               FROM rekey_touched t JOIN leads l ON l.id = t.id
               WHERE l.addr_std IS NOT NULL AND NOT l.broker_created),
           -- only leads whose key changes go on (usually none of the ~150k folded leads of a 1M
           -- upload); a touched lead already keyed at h still blocks a twin through NOT EXISTS
           want AS (SELECT id, h FROM touched WHERE h IS NOT NULL AND stored IS DISTINCT FROM h)
           UPDATE leads l SET addr_hash = w.h FROM want w
           WHERE l.id = w.id
             AND w.h IN (SELECT h FROM want GROUP BY h HAVING count(*) = 1)
             AND NOT EXISTS (SELECT 1 FROM leads o WHERE o.addr_hash = w.h AND NOT o.broker_created)"""
    ).rowcount
    conn.execute("DROP TABLE rekey_touched")
    return changed
