"""The set-based merge against a real database: same result as upsert_lead row by row."""

import hashlib
import json
import random
import uuid
from decimal import Decimal

import psycopg
import pytest

from equity_assets.ingest.merge import merge_upload


def h(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def new_upload(conn) -> str:
    upload_id = str(uuid.uuid4())
    conn.execute(
        "INSERT INTO uploads (id, content_sha256, storage_path, byte_size) VALUES (%s, %s, 'x', 0)",
        (upload_id, h(upload_id)),
    )
    return upload_id


def stage(conn, upload_id: str, rows: list[dict]) -> None:
    for i, row in enumerate(rows, start=1):
        cols = ["upload_id", "row_number", *row]
        conn.execute(
            f"INSERT INTO leads_staging ({', '.join(cols)}) VALUES ({', '.join(['%s'] * len(cols))})",
            (upload_id, i, *row.values()),
        )


def lineage(conn, upload_id: str) -> list[tuple[int, str, str]]:
    return conn.execute(
        "SELECT row_number, lead_id::text, matched_on FROM lead_sources WHERE upload_id = %s ORDER BY 1", (upload_id,)
    ).fetchall()


def test_in_batch_duplicates_collapse_to_one_lead(admin_conn):
    up = new_upload(admin_conn)
    stage(admin_conn, up, [
        {"addr_hash": h("1 main"), "first_name": "Ann", "marketing_lists": ["A"]},
        {"addr_hash": h("2 main"), "first_name": "Bob"},
        {"addr_hash": h("1 main"), "last_name": "Lee", "marketing_lists": ["B"], "do_not_mail": True},
        {"addr_hash": h("1 main"), "first_name": None, "do_not_mail": False},
    ])
    counts = merge_upload(admin_conn, up)
    assert (counts.staged, counts.inserted, counts.merged_in_batch) == (4, 2, 2)
    rows = lineage(admin_conn, up)
    assert [r[2] for r in rows] == ["new", "new", "in_batch", "in_batch"]
    assert rows[0][1] == rows[2][1] == rows[3][1] != rows[1][1]
    lead = admin_conn.execute(
        "SELECT first_name, last_name, marketing_lists, do_not_mail FROM leads WHERE id = %s", (rows[0][1],)
    ).fetchone()
    assert lead == ("Ann", "Lee", ["A", "B"], True)


def test_rows_linked_through_different_keys_form_one_group(admin_conn):
    up = new_upload(admin_conn)
    stage(admin_conn, up, [
        {"addr_hash": h("a"), "apn": "1", "property_state": "CA", "county": "LA"},
        {"addr_hash": h("b"), "mak": "1000000001"},
        {"addr_hash": h("a"), "mak": "1000000001"},  # links row 1 and row 2
    ])
    counts = merge_upload(admin_conn, up)
    # sequential semantics: rows 1 and 2 are new leads; row 3 matches row 2's by MAK but its
    # address is row 1's lead: a recorded conflict (both leads named), not a crash, not applied
    assert counts.inserted == 2 and counts.conflicts == 1
    assert admin_conn.execute("SELECT count(*) FROM leads").fetchone()[0] == 2
    assert admin_conn.execute(
        "SELECT key_name, matched_on, other_lead_id IS NOT NULL, row_number FROM lead_key_conflicts").fetchall() == [
        ("address", "mak", True, 3)]


def test_matches_existing_leads_by_priority(admin_conn):
    x = admin_conn.execute("SELECT upsert_lead(%s)", (json.dumps({"mak": "1000000009"}),)).fetchone()[0]
    y = admin_conn.execute("SELECT upsert_lead(%s)", (json.dumps({"apn": "7", "property_state": "TX", "county": "HARRIS"}),)).fetchone()[0]
    z = admin_conn.execute("SELECT upsert_lead(%s)", (json.dumps({"addr_hash": h("z")}),)).fetchone()[0]
    up = new_upload(admin_conn)
    stage(admin_conn, up, [
        {"mak": "1000000009", "first_name": "ByMak"},
        {"apn": "7", "property_state": "TX", "county": "HARRIS", "first_name": "ByApn"},
        {"addr_hash": h("z"), "first_name": "ByHash"},
    ])
    counts = merge_upload(admin_conn, up)
    assert (counts.inserted, counts.updated) == (0, 3)
    assert [(r[1], r[2]) for r in lineage(admin_conn, up)] == [(str(x), "mak"), (str(y), "apn"), (str(z), "addr_hash")]
    names = dict(admin_conn.execute("SELECT id, first_name FROM leads").fetchall())
    assert (names[x], names[y], names[z]) == ("ByMak", "ByApn", "ByHash")


def test_rematerializing_is_a_no_op(admin_conn):
    up = new_upload(admin_conn)
    stage(admin_conn, up, [{"addr_hash": h(str(i % 7)), "equity": i} for i in range(20)])
    first = merge_upload(admin_conn, up)
    before = admin_conn.execute("SELECT id, updated_at, equity FROM leads ORDER BY id").fetchall()
    second = merge_upload(admin_conn, up)
    after = admin_conn.execute("SELECT id, updated_at, equity FROM leads ORDER BY id").fetchall()
    assert first.inserted == 7 and second.staged == 0 and second.inserted == second.updated == 0
    assert before == after
    assert admin_conn.execute("SELECT count(*) FROM lead_sources").fetchone()[0] == 20


def random_rows(seed: int, n: int) -> list[dict]:
    """Messy rows whose keys collide often, including conflicting combinations."""
    rnd = random.Random(seed)
    rows = []
    for _ in range(n):
        row = {"first_name": rnd.choice(["Ann", "Bob", None]), "equity": rnd.choice([None, 1, 2, 3]),
               "do_not_mail": rnd.choice([None, True, False]), "marketing_lists": rnd.choice([None, ["A"], ["B", "A"]])}
        if rnd.random() < 0.4:
            row["mak"] = f"10000000{rnd.randrange(12):02d}"
        if rnd.random() < 0.5:
            row.update(apn=str(rnd.randrange(12)), property_state="CA", county=rnd.choice(["LA", "ORANGE"]))
        if rnd.random() < 0.7:
            row["addr_hash"] = h(str(rnd.randrange(15)))
        rows.append(row)
    return rows


def snapshot(conn) -> list[tuple]:
    rows = conn.execute(
        """SELECT mak, apn, property_state, county, addr_hash, first_name, equity, do_not_mail, marketing_lists
           FROM leads"""
    ).fetchall()
    return sorted(rows, key=repr)


@pytest.mark.parametrize("seed", range(5))
def test_same_result_as_upsert_lead_row_by_row(admin_conn, seed):
    rows = random_rows(seed, 60)
    for row in rows:
        admin_conn.execute("SELECT upsert_lead(%s)", (json.dumps(row),))
    expected = snapshot(admin_conn)
    expected_conflicts = admin_conn.execute("SELECT count(*) FROM lead_key_conflicts").fetchone()[0]
    admin_conn.rollback()

    up = new_upload(admin_conn)
    stage(admin_conn, up, rows)
    counts = merge_upload(admin_conn, up)
    assert snapshot(admin_conn) == expected
    assert counts.conflicts == expected_conflicts
    assert counts.inserted == len(expected)


def duplicate_heavy_rows(seed: int, n: int) -> list[dict]:
    """Mostly exact or partial repeats of a few properties (foldable groups), some with an APN
    but no county (an incomplete key), plus a few rows that link groups through another key."""
    rnd = random.Random(seed)
    props = [{"addr_hash": h(f"p{i}"), "apn": str(i), "property_state": "NV",
              "county": rnd.choice(["CLARK", None])} for i in range(8)]
    rows = []
    for _ in range(n):
        row = dict(rnd.choice(props))
        row.update(first_name=rnd.choice(["Ann", None]), equity=rnd.choice([None, 5, 6]),
                   litigator=rnd.choice([None, True, False]), marketing_lists=rnd.choice([None, ["X"], ["Y"]]))
        if rnd.random() < 0.3:
            row.pop("apn")
        if rnd.random() < 0.05:
            row["mak"] = f"30000000{rnd.randrange(3):02d}"
        rows.append(row)
    return rows


@pytest.mark.parametrize("seed", range(4))
def test_folded_duplicate_groups_match_upsert_lead(admin_conn, seed):
    rows = duplicate_heavy_rows(seed, 50)
    for row in rows:
        admin_conn.execute("SELECT upsert_lead(%s)", (json.dumps(row),))
    expected = snapshot(admin_conn)
    admin_conn.rollback()

    up = new_upload(admin_conn)
    stage(admin_conn, up, rows)
    counts = merge_upload(admin_conn, up)
    assert snapshot(admin_conn) == expected
    matched = dict(admin_conn.execute(
        "SELECT matched_on, count(*) FROM lead_sources WHERE upload_id = %s GROUP BY 1", (up,)).fetchall())
    assert sum(matched.values()) == len(rows)
    assert matched["new"] == counts.inserted


# An independent model of the documented merge rules, in plain Python: the oracle for the merge
# is not the product's own upsert_lead() alone.
def model_merge(rows: list[dict]) -> tuple[list[tuple], int]:
    """(snapshot-shaped leads, distinct key conflicts) of merging `rows` in file order."""
    leads: list[dict] = []
    conflicts: set[tuple] = set()

    def owner(match) -> int | None:
        return next((i for i, lead in enumerate(leads) if match(lead)), None)

    for number, row in enumerate(rows, start=1):
        inc = {"mak": None, "apn": None, "property_state": None, "county": None, "addr_hash": None,
               "first_name": None, "equity": None, "do_not_mail": None, "marketing_lists": None, **row}
        apn_key = (inc["property_state"], inc["county"], inc["apn"])
        by_mak = owner(lambda lead: inc["mak"] is not None and lead["mak"] == inc["mak"])
        by_apn = owner(lambda lead: None not in apn_key
                       and (lead["property_state"], lead["county"], lead["apn"]) == apn_key)
        by_addr = owner(lambda lead: inc["addr_hash"] is not None and lead["addr_hash"] == inc["addr_hash"])
        target = next((t for t in (by_mak, by_apn, by_addr) if t is not None), None)
        if target is None:
            leads.append({k: None for k in inc} | {"do_not_mail": False, "marketing_lists": []})
            target = len(leads) - 1
        else:
            # matched by MAK or APN, but the address is another property's: recorded with the
            # row, nothing of the row applied (one record per row, or per lead pair when the
            # address belongs to another lead)
            known = leads[target]["addr_hash"]
            if by_addr != target and inc["addr_hash"] is not None and known is not None and inc["addr_hash"] != known:
                conflicts.add((target, by_addr if by_addr is not None else f"row {number}", "address"))
                continue
            # a key that belongs to another lead is recorded, not applied
            if by_apn is not None and by_apn != target:
                conflicts.add((target, by_apn, "apn"))
                inc["apn"] = None
            if by_addr is not None and by_addr != target:
                conflicts.add((target, by_addr, "addr_hash"))
                inc["addr_hash"] = None
        cur = leads[target]
        # keys are identity: filled when empty, never changed; the APN key moves as a whole
        cur["mak"] = cur["mak"] or inc["mak"]
        cur["addr_hash"] = cur["addr_hash"] or inc["addr_hash"]
        if cur["apn"] is None and inc["apn"] is not None and (
                (inc["property_state"] and inc["county"]) or (cur["property_state"] is None and cur["county"] is None)):
            cur["apn"], cur["property_state"], cur["county"] = inc["apn"], inc["property_state"], inc["county"]
        else:
            cur["property_state"] = cur["property_state"] or inc["property_state"]
            cur["county"] = cur["county"] or inc["county"]
        # newer non-null values win; flags never un-set; lists unioned in order of first appearance
        for column in ("first_name", "equity"):
            if inc[column] is not None:
                cur[column] = inc[column]
        cur["do_not_mail"] = cur["do_not_mail"] or bool(inc["do_not_mail"])
        cur["marketing_lists"] = list(dict.fromkeys(cur["marketing_lists"] + (inc["marketing_lists"] or [])))
    columns = ("mak", "apn", "property_state", "county", "addr_hash", "first_name", "equity", "do_not_mail",
               "marketing_lists")
    shaped = [tuple(None if lead[c] is None else Decimal(lead[c]) if c == "equity" else lead[c] for c in columns)
              for lead in leads]
    return sorted(shaped, key=repr), len(conflicts)


@pytest.mark.parametrize("seed", range(5))
def test_merge_equals_an_independent_model_of_the_rules(admin_conn, seed):
    rows = random_rows(seed, 60) if seed % 2 else duplicate_heavy_rows(seed, 50)
    expected, conflicts = model_merge(rows)
    up = new_upload(admin_conn)
    stage(admin_conn, up, rows)
    counts = merge_upload(admin_conn, up)
    assert snapshot(admin_conn) == expected
    assert counts.conflicts == conflicts and counts.inserted == len(expected)


def test_keys_with_quotes_commas_and_newlines_still_group(admin_conn):
    # the grouping reads the linked rows' keys back as CSV: odd characters must not split or merge them
    up = new_upload(admin_conn)
    county = 'SAINT "X",\nCOUNTY'
    stage(admin_conn, up, [
        {"apn": "1,2", "property_state": "CA", "county": county, "first_name": "Ann"},
        {"apn": "1,2", "property_state": "CA", "county": "SAINT", "first_name": "Bob"},
        {"apn": "1,2", "property_state": "CA", "county": county, "last_name": "Lee"},
    ])
    counts = merge_upload(admin_conn, up)
    assert (counts.inserted, counts.merged_in_batch) == (2, 1)
    rows = lineage(admin_conn, up)
    assert [r[2] for r in rows] == ["new", "new", "in_batch"]
    assert rows[0][1] == rows[2][1] != rows[1][1]
    assert admin_conn.execute("SELECT first_name, last_name, county FROM leads WHERE id = %s",
                              (rows[0][1],)).fetchone() == ("Ann", "Lee", county)


def test_planner_knows_how_many_rows_are_new_leads(admin_conn):
    """The insert of a part of the new single rows reads that part's range of staging in one pass:
    not one index probe per row, and not the whole upload's staging for every part."""
    from equity_assets.ingest.merge import SINGLE_ROWS, build_work_table, find_single_rows

    up = new_upload(admin_conn)
    admin_conn.execute(
        """INSERT INTO leads_staging (upload_id, row_number, addr_hash)
           SELECT %s, i, encode(sha256(i::text::bytea), 'hex') FROM generate_series(1, 5000) i""",
        (up,),
    )
    admin_conn.execute("ANALYZE leads_staging")
    build_work_table(admin_conn, up)
    singles = find_single_rows(admin_conn)
    assert singles == list(range(1, 5001))
    plan = admin_conn.execute(f"EXPLAIN (FORMAT json) SELECT s.* FROM {SINGLE_ROWS}",
                              {"rows": singles[:2000], "upload": up, "lo": 1, "hi": 2000}).fetchone()[0][0]["Plan"]
    assert plan["Node Type"] in ("Merge Join", "Hash Join") and plan["Plan Rows"] >= 200
    # a part reads its own range of staging, not the whole upload's
    scan = next(p for p in plan["Plans"] if p["Node Type"] != "Function Scan")
    while "Plans" in scan and scan["Node Type"] not in ("Index Scan", "Seq Scan", "Bitmap Heap Scan"):
        scan = scan["Plans"][0]
    assert scan["Node Type"] == "Index Scan" and "row_number" in scan["Index Cond"] and scan["Plan Rows"] < 2500, scan


def test_rekey_moves_a_lead_to_its_stored_address_key_unless_another_lead_holds_or_wants_it(admin_conn):
    from equity_assets.ingest.address_resolution import rekey_touched_leads

    up = new_upload(admin_conn)
    # (name, street line, zip, stale key?) — every lead is touched by this upload
    leads = [("twin-a", "1 MAIN ST|", "60601", True), ("twin-b", "1 MAIN ST|", "60601", True),
             ("moves", "2 MAIN ST|", "60601", True), ("holder", "3 MAIN ST|", "60601", False),
             ("blocked", "3 MAIN ST|", "60601", True), ("settled", "4 MAIN ST|", "60601", False)]
    ids = {}
    for row, (name, std, zip5, stale) in enumerate(leads, start=1):
        key = h(f"stale {name}") if stale else None
        ids[name] = admin_conn.execute(
            """INSERT INTO leads (first_name, addr_std, addr_city, property_state, property_zip, addr_hash)
               VALUES (%s, %s, 'CHICAGO', 'IL', %s,
                       coalesce(%s, lead_address_hash(%s, 'CHICAGO', 'IL', %s))) RETURNING id""",
            (name, std, zip5, key, std, zip5)).fetchone()[0]
        admin_conn.execute("INSERT INTO lead_sources (upload_id, row_number, lead_id, matched_on) "
                           "VALUES (%s, %s, %s, 'mak')", (up, row, ids[name]))
    assert rekey_touched_leads(admin_conn, up) == 1
    keyed = dict(admin_conn.execute(
        """SELECT first_name, addr_hash = lead_address_hash(addr_std, addr_city, property_state, property_zip)
           FROM leads""").fetchall())
    # two leads that want one key keep theirs; so does one whose key another lead already holds
    assert keyed == {"twin-a": False, "twin-b": False, "moves": True, "holder": True, "blocked": False,
                     "settled": True}


def test_duplicate_keys_check_counts_the_surplus_rows_of_every_key(admin_conn):
    """The check's read-back, with the unique indexes gone (dropped in this rolled-back transaction)."""
    from equity_assets.ingest.checks import DUPLICATE_KEYS_SQL

    assert dict(admin_conn.execute(DUPLICATE_KEYS_SQL).fetchall()) == {"mak": 0, "apn": 0, "addr_hash": 0}
    admin_conn.execute("DROP INDEX leads_addr_hash_key, leads_apn_key, leads_mak_key")
    for key, mak, state, apn in [("a", "1234567890", "IL", "1"), ("a", "1234567890", "IL", "1"), ("a", None, "IL", "2"),
                                 ("b", "1234567891", None, "2"), ("b", "1234567891", "IL", "2")]:
        admin_conn.execute("INSERT INTO leads (addr_hash, mak, property_state, county, apn) VALUES (%s, %s, %s, 'COOK', %s)",
                           (h(key), mak, state, apn))
    # a broker's lead is outside pipeline identity: its key is no duplicate
    admin_conn.execute("INSERT INTO leads (addr_hash, broker_created) VALUES (%s, true)", (h("a"),))
    assert dict(admin_conn.execute(DUPLICATE_KEYS_SQL).fetchall()) == {"mak": 2, "apn": 2, "addr_hash": 3}


def singles_and_groups(seed: int) -> list[dict]:
    """Rows of their own (new single leads) around the messy, colliding rows of `random_rows`."""
    rnd = random.Random(seed)
    rows = [{"addr_hash": h(f"single {seed} {i}"), "first_name": rnd.choice(["Cy", None]),
             "marketing_lists": rnd.choice([None, ["S"]])} for i in range(40)]
    rows[10:10] = random_rows(seed, 40)
    return rows


@pytest.mark.parametrize("seed", range(3))
def test_parallel_insert_workers_give_the_result_of_one_transaction(postgres, clean_db, seed):
    """With insert workers the single rows go in on their own connections while the merge applies
    the rest: the leads are what the rules give (the independent model), every row once."""
    rows = singles_and_groups(seed)
    expected, conflicts = model_merge(rows)
    with psycopg.connect(clean_db.admin_dsn) as conn:
        up = new_upload(conn)
        stage(conn, up, rows)
    with postgres.connection() as conn:
        counts = merge_upload(conn, up, connect=postgres.connection, workers=2, parallel_min_rows=1, part_rows=7)
    with psycopg.connect(clean_db.admin_dsn) as conn:
        # parts committed by workers besides the merge's own transaction
        assert conn.execute("SELECT count(DISTINCT xmin::text) FROM leads").fetchone()[0] >= 2
        assert snapshot(conn) == expected
        assert [r[0] for r in lineage(conn, up)] == list(range(1, len(rows) + 1))
    assert counts.conflicts == conflicts and counts.inserted == len(expected)


def test_a_failed_insert_worker_fails_the_merge_and_a_rerun_merges_every_row_once(postgres, clean_db):
    """Each part a worker inserts commits its leads with their lineage; when a part fails, the merge
    fails and its own transaction rolls back. The re-run merges exactly the rows without lineage."""
    rows = [{"addr_hash": h(f"own {i}"), "first_name": f"N{i}"} for i in range(1, 9)]
    rows += [{"addr_hash": h("twice"), "first_name": "Ann"}, {"addr_hash": h("twice"), "last_name": "Lee"}]
    rows[6]["property_zip"] = "123"  # leads accept 5-digit ZIPs only: the part holding row 7 fails
    with psycopg.connect(clean_db.admin_dsn) as conn:
        up = new_upload(conn)
        stage(conn, up, rows)
    with pytest.raises(psycopg.errors.CheckViolation), postgres.connection() as conn:
        merge_upload(conn, up, connect=postgres.connection, workers=1, parallel_min_rows=1, part_rows=2)
    with psycopg.connect(clean_db.admin_dsn) as conn:
        merged = [r[0] for r in lineage(conn, up)]
        # only whole parts of single rows the worker committed; never row 7's part or the duplicates
        assert set(merged) <= {1, 2, 3, 4, 5, 6} and len(merged) % 2 == 0
        assert conn.execute("SELECT count(*) FROM leads").fetchone()[0] == len(merged)
        conn.execute("UPDATE leads_staging SET property_zip = '12345' WHERE upload_id = %s AND row_number = 7", (up,))
    with postgres.connection() as conn:
        again = merge_upload(conn, up, connect=postgres.connection, workers=1, parallel_min_rows=1, part_rows=2)
    assert (again.staged, again.inserted, again.merged_in_batch) == (10 - len(merged), 9 - len(merged), 1)
    with psycopg.connect(clean_db.admin_dsn) as conn:
        assert [r[0] for r in lineage(conn, up)] == list(range(1, 11))
        assert conn.execute("SELECT count(*) FROM leads").fetchone()[0] == 9
        assert conn.execute("SELECT first_name, last_name FROM leads WHERE addr_hash = %s",
                            (h("twice"),)).fetchone() == ("Ann", "Lee")
