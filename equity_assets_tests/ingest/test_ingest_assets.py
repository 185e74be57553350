"""staged_leads → deduped_leads through Dagster on a real database."""

import hashlib
import json
import uuid

import dagster as dg
import pytest

from equity_assets.ingest.assets import deduped_leads, staged_leads
from equity_assets.ingest.partitions import uploads_partitions
from equity_assets.ingest.sensors import upload_sensor
from equity_assets.ingest.synthetic import write_propstream_csv

HEADER = ("Address,Unit #,City,State,Zip,County,APN,Owner Occupied,Owner 1 First Name,Owner 1 Last Name,"
          "Company Name,Est. Equity,Est. Loan-to-Value,Date Added to List")


def register_upload(conn, path, source="propstream") -> str:
    data = path.read_bytes()
    upload_id = str(uuid.uuid4())
    conn.execute(
        "INSERT INTO uploads (id, content_sha256, source, storage_path, byte_size) VALUES (%s, %s, %s, %s, %s)",
        (upload_id, hashlib.sha256(data + upload_id.encode()).hexdigest(), source, str(path), len(data)),
    )
    return upload_id


def run_ingest(postgres, upload_id, instance=None, raise_on_error=True):
    instance = instance or dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(uploads_partitions.name, [upload_id])
    return dg.materialize([staged_leads, deduped_leads], partition_key=upload_id, instance=instance,
                          resources={"postgres": postgres}, raise_on_error=raise_on_error)


def metadata(result, asset):
    return {k: v.value for k, v in result.asset_materializations_for_node(asset)[0].metadata.items()}


def test_propstream_file_lands_in_leads_and_bad_rows_go_to_dlq(postgres, tmp_path):
    csv = tmp_path / "export.csv"
    csv.write_text("\n".join([
        HEADER,
        '123 Main Street,Apt 4,Derby,CT,6418,New Haven,DERB M:11 B:4 L:45,Yes,Ann,Lee,,250000,22.22,03/15/2024',
        '123 main st,#4,Derby,CT,06418,New Haven,,Yes,Ann,Lee,,260000,20,03/16/2024',
        '9 Oak Ave,,Austin,TX,78701,Travis,0042 17:3,No,,,"Acme Holdings Llc",100000,50,01/02/2024',
        '1 Bad Row Rd,,Nowhere,ZZZ,999999,,,,,,,not-money,abc,13/45/2024',
    ]) + "\n")
    with postgres.connection() as conn:
        upload_id = register_upload(conn, csv)
    result = run_ingest(postgres, upload_id)
    staged, merged = metadata(result, "staged_leads"), metadata(result, "deduped_leads")
    assert (staged["file_rows"], staged["staged_rows"], staged["rejected_rows"]) == (4, 3, 1)
    assert (merged["inserted"], merged["merged_in_batch"]) == (2, 1)
    with postgres.connection() as conn:
        leads = conn.execute(
            "SELECT property_zip, apn, company_name, equity, owner_occupied FROM leads ORDER BY property_zip"
        ).fetchall()
        dlq = conn.execute("SELECT row_number, column_name, reason FROM pipeline_dlq WHERE source_ref = %s",
                           (upload_id,)).fetchall()
        status = conn.execute("SELECT status, file_rows FROM uploads WHERE id = %s", (upload_id,)).fetchone()
        events = dict(conn.execute("SELECT event_type, count FROM pipeline_events WHERE upload_id = %s", (upload_id,)).fetchall())
    assert leads[0][:2] == ("06418", "DERB M:11 B:4 L:45") and leads[0][3] == 260000 and leads[0][4] is True
    assert leads[1][2] == "Acme Holdings Llc"
    assert [d[0] for d in dlq] == [4] and dlq[0][2]
    assert status == ("merged", 4)
    assert events["dedupe_success"] == 3 and events["upload_staged"] == 3
    check = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert check == {"staged_rows_add_up": True}


def test_rematerializing_a_partition_changes_nothing(postgres, tmp_path):
    csv = tmp_path / "synthetic.csv"
    truth = write_propstream_csv(csv, 2000, seed=3)
    with postgres.connection() as conn:
        upload_id = register_upload(conn, csv)
    instance = dg.DagsterInstance.ephemeral()
    run_ingest(postgres, upload_id, instance)
    snapshot = "SELECT id, updated_at FROM leads ORDER BY id"
    with postgres.connection() as conn:
        before = conn.execute(snapshot).fetchall()
        dlq_before = conn.execute("SELECT count(*) FROM pipeline_dlq").fetchone()[0]
    again = run_ingest(postgres, upload_id, instance)
    with postgres.connection() as conn:
        assert conn.execute(snapshot).fetchall() == before
        assert conn.execute("SELECT count(*) FROM pipeline_dlq").fetchone()[0] == dlq_before
        assert conn.execute("SELECT count(*) FROM pipeline_events WHERE event_type = 'dedupe_success'").fetchone()[0] == 1
    merged = metadata(again, "deduped_leads")
    assert merged["inserted"] == merged["updated"] == 0 and merged["already_merged_rows"] == 2000 - metadata(again, "staged_leads")["rejected_rows"]
    scores = truth.pairwise_scores(lineage_clusters(postgres, upload_id, truth.rows))
    assert scores.precision >= 0.999 and scores.recall >= 0.99



def test_new_leads_take_the_ids_minted_at_staging_in_file_order(postgres, tmp_path):
    csv = tmp_path / "synthetic.csv"
    write_propstream_csv(csv, 3000, seed=5)
    with postgres.connection() as conn:
        upload_id = register_upload(conn, csv)
    run_ingest(postgres, upload_id)
    with postgres.connection() as conn:
        rows = conn.execute(
            """SELECT ls.row_number, ls.lead_id, s.new_lead_id, ls.matched_on FROM lead_sources ls
               JOIN leads_staging s USING (upload_id, row_number) WHERE ls.upload_id = %s ORDER BY 1""",
            (upload_id,)).fetchall()
        leads = conn.execute("SELECT count(*) FROM leads").fetchone()[0]
    new = [r for r in rows if r[3] == "new"]
    assert len(rows) == 3000 and len(new) > 2000
    folded_heads = {r[1] for r in rows if r[3] == "in_batch"}
    # a single new row becomes the lead minted for it; a folded group's lead has the plan's id
    singles = [r for r in new if r[1] not in folded_heads]
    assert singles and all(lead == minted for _, lead, minted, _ in singles)
    assert [r[1].bytes for r in singles] == sorted(r[1].bytes for r in singles)
    assert leads == len(new)

def lineage_clusters(postgres, upload_id, rows):
    with postgres.connection() as conn:
        got = dict(conn.execute("SELECT row_number, lead_id::text FROM lead_sources WHERE upload_id = %s", (upload_id,)).fetchall())
    # rejected rows are their own singleton cluster
    return [got.get(i, f"rejected-{i}") for i in range(1, rows + 1)]


def test_unterminated_quote_fails_the_upload_with_a_reason(postgres, tmp_path):
    csv = tmp_path / "broken.csv"
    csv.write_text(HEADER + '\n"1 Main St,,Derby,CT,06418,New Haven,,Yes,Ann,Lee,,1,1,01/01/2024\n2 Oak,,A,CT,06418,X,,,,,,,,\n')
    with postgres.connection() as conn:
        upload_id = register_upload(conn, csv)
    result = run_ingest(postgres, upload_id, raise_on_error=False)
    assert not result.success
    with postgres.connection() as conn:
        status, error = conn.execute("SELECT status, error FROM uploads WHERE id = %s", (upload_id,)).fetchone()
        assert conn.execute("SELECT count(*) FROM leads_staging").fetchone()[0] == 0
        dlq = conn.execute("SELECT reason FROM pipeline_dlq WHERE source_ref = %s", (upload_id,)).fetchall()
    assert status == "failed" and "quote" in error.lower()
    assert len(dlq) == 1 and "quote" in dlq[0][0].lower()


def test_sensor_requests_one_run_per_upload_and_never_repeats(postgres, tmp_path):
    csv = tmp_path / "a.csv"
    csv.write_text(HEADER + "\n")
    with postgres.connection() as conn:
        first = [register_upload(conn, csv) for _ in range(3)]
    instance = dg.DagsterInstance.ephemeral()
    with dg.build_sensor_context(instance=instance, resources={"postgres": postgres}) as ctx:
        result = upload_sensor(ctx)
    assert sorted(r.run_key for r in result.run_requests) == sorted(first)
    assert all(r.partition_key == r.run_key for r in result.run_requests)
    assert sorted(result.dynamic_partitions_requests[0].partition_keys) == sorted(first)
    instance.add_dynamic_partitions(uploads_partitions.name, first)
    # next tick with the advanced cursor: the same rows are still in the look-back window, but a
    # run key blocks repeats; a new upload is requested
    with postgres.connection() as conn:
        late = register_upload(conn, csv)
    with dg.build_sensor_context(instance=instance, cursor=result.cursor, resources={"postgres": postgres}) as ctx2:
        result2 = upload_sensor(ctx2)
    assert late in [r.run_key for r in result2.run_requests]
    assert result2.dynamic_partitions_requests[0].partition_keys == [late]
    assert json.loads(result2.cursor)["received_at"] >= json.loads(result.cursor)["received_at"]


def test_sensor_skips_when_nothing_is_new(postgres):
    with dg.build_sensor_context(instance=dg.DagsterInstance.ephemeral(), resources={"postgres": postgres}) as ctx:
        result = upload_sensor(ctx)
    assert not result.run_requests and result.skip_reason


def test_a_nul_byte_or_an_over_long_field_costs_one_row_not_the_file(postgres, tmp_path):
    good = '{n} Main Street,,Derby,CT,06418,New Haven,P-{n},Yes,Ann,Lee{n},,1000,10,03/15/2024'
    lines = [HEADER.encode()] + [good.format(n=n).encode() for n in range(1, 7)]
    lines[2] = lines[2].replace(b"Ann", b"A\x00nn")  # data row 2
    lines[5] = lines[5].replace(b"Lee5", b'"' + b"y" * 200_000 + b'"')  # data row 5
    csv = tmp_path / "stray.csv"
    csv.write_bytes(b"\n".join(lines) + b"\n")
    with postgres.connection() as conn:
        upload_id = register_upload(conn, csv)
    result = run_ingest(postgres, upload_id)
    staged = metadata(result, "staged_leads")
    assert (staged["file_rows"], staged["staged_rows"], staged["rejected_rows"]) == (6, 4, 2)
    with postgres.connection() as conn:
        apns = [r[0] for r in conn.execute("SELECT apn FROM leads ORDER BY apn")]
        dlq = conn.execute("SELECT row_number, reason, payload FROM pipeline_dlq WHERE source_ref = %s "
                           "ORDER BY row_number", (upload_id,)).fetchall()
        status = conn.execute("SELECT status FROM uploads WHERE id = %s", (upload_id,)).fetchone()[0]
    assert apns == ["P-1", "P-3", "P-4", "P-6"] and status == "merged"
    assert [(row, word in reason) for (row, reason, _), word in zip(dlq, ("NUL", "characters long"))] \
        == [(2, True), (5, True)]
    assert dlq[0][2]["APN"] == "P-2"  # the row's other values are kept for a redrive


def test_staging_an_upload_waits_while_its_merge_holds_it(postgres, tmp_path, clean_db):
    import threading

    import psycopg

    from equity_assets.ingest.staging import lock_upload, stage_upload

    csv = tmp_path / "synthetic.csv"
    write_propstream_csv(csv, 500, seed=5)
    with postgres.connection() as conn:
        upload_id = register_upload(conn, csv)
    restaged = threading.Event()

    def restage():
        with postgres.connection() as conn:
            stage_upload(conn, upload_id, str(csv), source="propstream")
        restaged.set()

    with psycopg.connect(clean_db.admin_dsn) as merging:
        lock_upload(merging, upload_id)  # what merge_upload holds for its whole transaction
        worker = threading.Thread(target=restage)
        worker.start()
        assert not restaged.wait(1.5), "staging went ahead under a merge of the same upload"
    assert restaged.wait(30)
    worker.join()
    with postgres.connection() as conn:
        assert conn.execute("SELECT count(*) FROM leads_staging WHERE upload_id = %s", (upload_id,)).fetchone()[0] == 500


def test_two_runs_of_one_partition_at_once_merge_every_row_once(postgres, tmp_path):
    # a backfill run and the sensor's run of the same upload, or a double click in the UI
    from concurrent.futures import ThreadPoolExecutor

    csv = tmp_path / "synthetic.csv"
    write_propstream_csv(csv, 3000, seed=9)
    with postgres.connection() as conn:
        upload_id = register_upload(conn, csv)
    with ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(lambda _: run_ingest(postgres, upload_id, raise_on_error=False), range(2)))
    assert all(run.success for run in runs)
    with postgres.connection() as conn:
        staged, distinct_rows = conn.execute(
            "SELECT count(*), count(DISTINCT row_number) FROM leads_staging WHERE upload_id = %s", (upload_id,)).fetchone()
        lineage, lineage_leads_exist = conn.execute(
            """SELECT count(*), bool_and(EXISTS (SELECT 1 FROM leads l WHERE l.id = s.lead_id))
               FROM lead_sources s WHERE upload_id = %s""", (upload_id,)).fetchone()
    assert staged == distinct_rows and lineage == staged and lineage_leads_exist
    assert sorted(metadata(run, "deduped_leads")["inserted"] for run in runs)[0] == 0
