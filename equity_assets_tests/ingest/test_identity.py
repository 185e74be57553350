"""Address identity across list vendors, never-silent key conflicts, and nothing dropped without a
record — each through the real staged_leads → deduped_leads path on a real database."""

import json

from equity_assets.cli import main
from equity_assets.ingest.operate import ingest_file, trace_upload

HEADER = "Address,Unit #,City,State,Zip,County,APN,Owner 1 First Name,Owner 1 Last Name"


def write_csv(tmp_path, name, lines, header=HEADER):
    path = tmp_path / name
    path.write_text("\n".join([header, *lines]) + "\n")
    return path


def ingest(postgres, tmp_path, name, lines, header=HEADER):
    summary = ingest_file(postgres, write_csv(tmp_path, name, lines, header))
    assert summary["success"], summary
    return summary


def leads(postgres, columns="property_address, property_city, property_zip, first_name"):
    with postgres.connection() as conn:
        return conn.execute(f"SELECT {columns} FROM leads ORDER BY created_at, id").fetchall()


def keys_agree(postgres) -> int:
    with postgres.connection() as conn:
        return conn.execute(
            """SELECT count(*) FROM leads WHERE addr_std IS NOT NULL AND addr_hash IS DISTINCT FROM
               lead_address_hash(addr_std, addr_city, property_state, property_zip)""").fetchone()[0]


def test_zip_present_then_absent_is_one_lead(postgres, tmp_path):
    ingest(postgres, tmp_path, "a.csv", ["7946 S Ashland Ave,,Chicago,IL,60620,Cook,,Ann,Lee"])
    second = ingest(postgres, tmp_path, "b.csv", ["7946 South Ashland Avenue,,Chicago,IL,,,,Ann,Lee"])
    assert second["leads_inserted"] == 0 and second["address_variants_resolved"] == 1
    assert leads(postgres) == [("7946 S Ashland Ave", "Chicago", "60620", "Ann")]
    assert keys_agree(postgres) == 0
    # `equity ingest` runs the checks the upload job runs, the blocking read-backs included
    assert second["checks"] == {"staged_rows_add_up": True, "staged_rows_match_schema": True,
                                "no_duplicate_lead_keys": True, "staged_rows_accounted_for": True,
                                "upload_leads_match_schema": True, "lead_address_matches_keys": True}


def test_zip_absent_then_present_is_one_lead_rekeyed_to_the_zip(postgres, tmp_path):
    ingest(postgres, tmp_path, "a.csv", ["12 Elm St,,Springfield,IL,,,,Bo,Ray"])
    ingest(postgres, tmp_path, "b.csv", ["12 Elm Street,,Springfield,IL,62701,,,Bo,Ray"])
    assert leads(postgres) == [("12 Elm St", "Springfield", "62701", "Bo")]
    assert keys_agree(postgres) == 0  # the lead's key now includes the ZIP it gained
    # a third list, with the ZIP, matches the lead by its ZIP key directly
    third = ingest(postgres, tmp_path, "c.csv", ["12 ELM ST,,,,62701,,,,"])
    assert third["leads_inserted"] == 0 and third["address_variants_resolved"] == 0


def test_street_type_on_one_side_matches_only_when_unambiguous(postgres, tmp_path):
    ingest(postgres, tmp_path, "a.csv", ["7946 S Ashland Avenue,,Chicago,IL,60620,,,,",
                                         "10 Oak Ave,,Chicago,IL,60620,,,,",
                                         "10 Oak St,,Chicago,IL,60620,,,,"])
    second = ingest(postgres, tmp_path, "b.csv", ["7946 S Ashland,,Chicago,IL,60620,,,,",  # one candidate
                                                  "10 Oak,,Chicago,IL,60620,,,,"])  # Oak Ave or Oak St?
    assert second["leads_inserted"] == 1 and second["address_variants_resolved"] == 1
    assert len(leads(postgres)) == 4


def test_in_file_variants_fold_into_one_lead(postgres, tmp_path):
    summary = ingest(postgres, tmp_path, "a.csv", [
        "5 Main,,Oak Park,IL,,,,,",               # no ZIP, no street type
        "5 Main St,,Oak Park,IL,60302,,,,",       # the complete identity
        '"5 Main Street, Oak Park, IL 60302",,,,,,,,',  # the whole address in one cell
    ])
    assert summary["leads_inserted"] == 1
    assert leads(postgres, "property_address, property_city, property_state, property_zip") == [
        ("5 Main St", "Oak Park", "IL", "60302")]
    assert keys_agree(postgres) == 0


def test_zip_in_the_address_cell_fills_the_locality(postgres, tmp_path):
    ingest(postgres, tmp_path, "a.csv", ["27 Washington,,Oak Park,IL,60302,,,,"])
    second = ingest(postgres, tmp_path, "b.csv", ['"27 Washington\nOak Park IL 60302",,,,,,,,'])
    assert second["leads_inserted"] == 0
    assert len(leads(postgres)) == 1


def test_apn_match_with_another_address_is_a_recorded_conflict_not_applied(postgres, tmp_path):
    ingest(postgres, tmp_path, "a.csv", ["1 First St,,Austin,TX,78701,Travis,APN-9,Ann,Lee"])
    before = leads(postgres, "id, property_address, first_name, addr_hash")
    second = ingest(postgres, tmp_path, "b.csv", ["99 Other Rd,,Austin,TX,78702,Travis,APN-9,Bob,Roe"])
    assert second["key_conflicts"] == 1 and second["leads_inserted"] == 0
    # the lead keeps its own address, owner and key
    assert leads(postgres, "id, property_address, first_name, addr_hash") == before
    with (postgres.connection() as conn):
        lead_row, incoming, matched_on, row = conn.execute(
            "SELECT lead_row, incoming_row, matched_on, row_number FROM lead_key_conflicts WHERE key_name = 'address'"
        ).fetchone()
        traced = trace_upload(conn, second["upload_id"])
    assert (lead_row["property_address"], incoming["property_address"], matched_on, row) == (
        "1 First St", "99 Other Rd", "apn", 1)
    assert traced[0]["status"] == "conflict" and traced[0]["matched_key"] == "apn"
    # the first address again, without an APN, is still the same lead (not a second one)
    third = ingest(postgres, tmp_path, "c.csv", ["1 First Street,,Austin,TX,78701,,,,"])
    assert third["leads_inserted"] == 0 and len(leads(postgres)) == 1
    assert keys_agree(postgres) == 0


def test_illinois_short_zip_is_not_padded_and_the_drop_is_recorded(postgres, tmp_path):
    summary = ingest(postgres, tmp_path, "a.csv", ["1 Main St,,Rockford,IL,6100,,,,",
                                                   "2 Main St,,Hartford,CT,6103,,,,"])
    assert summary["staged"] == 2 and summary["dropped_values"] == 1
    assert sorted(leads(postgres, "property_city, property_zip")) == [("Hartford", "06103"), ("Rockford", None)]
    with postgres.connection() as conn:
        trace = trace_upload(conn, summary["upload_id"], row=1)
    assert trace[0]["status"] == "merged"
    assert trace[0]["dropped_values"][0]["value"] == "6100" and "never begin with 0" in trace[0]["dropped_values"][0]["reason"]


def test_blank_rows_skipped_ignored_headers_reported_vendor_aliases_read(postgres, tmp_path):
    header = "Address,City,State,Mailing Zip5,Owner Name,Wireless 1,Lead Notes,Company Address"
    summary = ingest(postgres, tmp_path, "v.csv", [
        "1 Main St,Rockford,IL,61101,\"SMITH, JOHN\",815-555-0100,call after 5,x",
        ",,,,,,,",
        "2 Main St,Rockford,IL,61101,Acme Holdings LLC,555-0100,,",
        " , , ,,,,,",
    ], header=header)
    assert (summary["file_rows"], summary["staged"], summary["rejected"], summary["blank_rows_skipped"]) == (2, 2, 0, 2)
    assert summary["ignored_headers"] == ["Lead Notes", "Company Address"]
    assert sorted(leads(postgres, "property_address, first_name, last_name, company_name, phone, mailing_zip")) == [
        ("1 Main St", "JOHN", "SMITH", None, "+18155550100", "61101"),
        ("2 Main St", None, None, "Acme Holdings LLC", None, "61101")]
    with postgres.connection() as conn:
        dropped = conn.execute("SELECT row_number, column_name, value FROM ingest_dropped_values ORDER BY row_number"
                               ).fetchall()
        warned = conn.execute("SELECT payload FROM pipeline_events WHERE event_type = 'upload_columns_ignored'"
                              ).fetchone()[0]
        traced = [t["status"] for t in trace_upload(conn, summary["upload_id"])]
    assert dropped == [(2, "*", None), (3, "Wireless 1", "555-0100"), (4, "*", None)]
    assert warned == {"level": "warning", "headers": ["Lead Notes", "Company Address"]}
    assert traced == ["merged", "skipped", "merged", "skipped"]


def test_cli_ingest_and_trace_print_json(postgres, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("EQUITY_DATABASE_URL", postgres.resolved_dsn())
    path = tmp_path / "cli.csv"
    path.write_text(HEADER + "\n1 Main St,,Austin,TX,78701,,,,\nnot an address,,,ZZ,,,,,\n")
    assert main(["ingest", str(path), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert {k: summary[k] for k in ("file_rows", "staged", "rejected", "leads_inserted", "leads_updated")} == {
        "file_rows": 2, "staged": 1, "rejected": 1, "leads_inserted": 1, "leads_updated": 0}
    assert main(["trace", "upload", summary["upload_id"], "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["row"], r["matched_key"], r["status"]) for r in rows] == [(1, "new", "merged"), (2, None, "rejected")]
    assert "property_state" in rows[1]["reason"]


def test_street_name_ending_in_a_type_word_and_typed_row_against_typeless_leads(postgres, tmp_path):
    # "Quail Hollow" ends in a word that is also a street type; the typed line still finds it
    ingest(postgres, tmp_path, "a.csv", ["3845 Quail Hollow,,Springfield,MA,01108,,,,",
                                         "10 Oak,,Chicago,IL,60620,,,,",
                                         "10 Oak St,,Chicago,IL,60620,,,,"])
    second = ingest(postgres, tmp_path, "b.csv", ["3845 Quail Hollow Dr,,Springfield,MA,01108,,,,",
                                                  "10 Oak Ave,,Chicago,IL,60620,,,,"])  # 10 Oak is 10 Oak St?
    assert second["leads_inserted"] == 1 and second["address_variants_resolved"] == 1
    assert keys_agree(postgres) == 0
    # the lead took the street type it lacked, and is keyed by it now
    assert ("3845 Quail Hollow Dr",) in leads(postgres, "property_address")


def test_labelled_variant_set_scores(postgres, tmp_path):
    from equity_assets.bench.ingest import pairwise
    from equity_assets.ingest.variants import write_variant_files
    import pandas as pd

    paths, truth = write_variant_files(tmp_path, entities=400, seed=5)
    uploads = {p.name: ingest_file(postgres, p)["upload_id"] for p in paths}
    with postgres.connection() as conn:
        lineage = {(name, row): str(lead) for name, up in uploads.items() for row, lead in conn.execute(
            "SELECT row_number, lead_id FROM lead_sources WHERE upload_id = %s", (up,))}
    keys = sorted(truth.entity_of)
    scores = pairwise(pd.Series([lineage.get(k, str(k)) for k in keys]), pd.Series([truth.entity_of[k] for k in keys]))
    assert scores["true_pairs"] > 300
    assert scores["precision"] >= 0.995 and scores["recall"] >= 0.97, scores
    assert keys_agree(postgres) == 0


def test_probable_duplicates_listed_never_merged_then_merged_by_hand(postgres, tmp_path, capsys, monkeypatch):
    ingest(postgres, tmp_path, "a.csv", ["7946 S Ashland Ave,,Chicago,IL,60620,,,Ann,Lee",
                                         "7950 S Ashland Ave,,Chicago,IL,60620,,,,"])  # a neighbour
    second = ingest(postgres, tmp_path, "b.csv", ["7946 S Ashlnd Ave,,Chicago,IL,60620,,,,",  # a typo
                                                  "7946 S Halsted St,,Chicago,IL,60620,,,,"])  # another street
    assert second["leads_inserted"] == 2 and second["duplicate_candidates"] == 1
    assert len(leads(postgres)) == 4  # nothing merged on a guess
    monkeypatch.setenv("EQUITY_DATABASE_URL", postgres.resolved_dsn())
    assert main(["leads", "candidates", "--json"]) == 0
    [pair] = json.loads(capsys.readouterr().out)
    assert pair["score"] >= 85 and "ASHLND" in pair["reason"] and pair["status"] == "open"
    assert main(["leads", "merge", pair["lead_id"], pair["other_lead_id"], "--by", "dana", "--json"]) == 0
    outcome = json.loads(capsys.readouterr().out)
    assert outcome["merged"] and outcome["merged_by"] == "dana"
    assert len(leads(postgres)) == 3
    with postgres.connection() as conn:
        assert conn.execute("SELECT merged_by, merged_id::text FROM lead_manual_merges").fetchone() == (
            "dana", outcome["merged_id"])
        assert conn.execute("SELECT status, decided_by FROM lead_duplicate_candidates").fetchone() == ("merged", "dana")
        # lineage of the folded lead's row now points at the survivor
        assert conn.execute("SELECT count(DISTINCT lead_id) FROM lead_sources WHERE lead_id::text = %s",
                            (outcome["kept_id"],)).fetchone()[0] == 1
    assert keys_agree(postgres) == 0


def test_leads_read_back_are_the_ones_the_upload_wrote(postgres, tmp_path):
    """A row recorded as a key conflict applied nothing to the lead it matched: a bad value that lead
    already had (an older parser's) does not fail this upload's read-back; a lead it merged into does."""
    ingest(postgres, tmp_path, "a.csv", ["1 Main St,,Springfield,IL,62701,Sangamon,P-1,Ann,Lee"])
    with postgres.connection() as conn:  # what an older parser let through
        conn.execute("UPDATE leads SET email = 'ann lee@example.com'")
    conflict = ingest_file(postgres, write_csv(tmp_path, "b.csv", ["9 Oak St,,Springfield,IL,62701,Sangamon,P-1,Bo,Ray"]))
    assert conflict["success"] and conflict["key_conflicts"] == 1
    assert conflict["checks"]["upload_leads_match_schema"] is True
    merged = ingest_file(postgres, write_csv(tmp_path, "c.csv", ["1 Main Street,,Springfield,IL,62701,,,Ann,"]))
    assert merged["success"] is False and merged["failed_checks"] == ["upload_leads_match_schema"]
