"""Crashes at the worst moment: the run process or the database killed with SIGKILL mid-merge and
mid-push, then restarted and re-run — nothing lost, no lead twice, no e-mail sent twice.

The database that is killed is a server of this module's own (own data dir, own port), never the
shared embedded cluster; each scenario works in a fresh database on it.
"""

from __future__ import annotations

import pytest

from equity_assets.bench import crashes, reliability


@pytest.fixture(scope="module")
def own_server():
    with crashes.own_cluster() as cluster:
        yield cluster


@pytest.mark.parametrize("kill", ["run", "database"])
def test_ingest_killed_mid_merge_then_rerun_loses_no_row_and_duplicates_no_lead(own_server, kill) -> None:
    figures = crashes.ingest_crash(kill, rows=2000, kill_delay_s=0.0, cluster=own_server)
    found = figures["found"]
    assert found["killed_mid_merge"], figures["injected"]
    assert found["after_crash"]["leads"] == 0 and found["after_crash"]["status"] == "staged", found["after_crash"]
    if kill == "database":  # crash recovery emptied the UNLOGGED staging table: the re-run staged the file again
        assert found["after_crash"]["staged_rows"] == 0 and found["rerun"]["restaged_after_loss"] is True
    assert found["rerun"]["success"] and all(found["rerun"]["checks"].values()), found["rerun"]
    assert found["second_ingest_exit_code"] == 0, found["second_ingest_error_tail"]
    assert figures["lost_rows"] == 0, found["lost_rows"]
    assert figures["duplicate_leads"] == 0, (found["key_duplicates"], found["rows_reaching_different_leads"],
                                             found["leads_no_row_reached"])
    assert found["statuses"] == ["merged", "merged"] and found["leads"] > 0


def test_database_killed_after_an_insert_worker_committed_a_part_then_rerun_loses_no_row(own_server) -> None:
    # 90,000 rows: ~64,000 new single rows, enough for the merge's insert worker and its parts. The
    # database crash is the harder case of the two: staging is lost too, and staged again
    figures = crashes.ingest_crash("database", rows=90_000, cluster=own_server, after_committed_part=True)
    found = figures["found"]
    assert found["killed_mid_merge"], figures["injected"]
    after = found["after_crash"]
    # the committed parts stay, each new lead with its lineage; the rest of the upload is not merged
    assert after["status"] == "staged" and 0 < after["merged_rows"] == after["leads"] < 90_000, after
    assert found["rerun"]["success"] and all(found["rerun"]["checks"].values()), found["rerun"]
    assert found["second_ingest_exit_code"] == 0, found["second_ingest_error_tail"]
    assert figures["lost_rows"] == 0, found["lost_rows"]
    assert figures["duplicate_leads"] == 0, (found["key_duplicates"], found["rows_reaching_different_leads"],
                                             found["leads_no_row_reached"])
    assert found["statuses"] == ["merged", "merged"]


def test_database_killed_mid_push_then_rerun_sends_each_lead_once(own_server) -> None:
    figures = reliability.campaign_kill(300, 2, chunk_size=10, kill_after_leads=40, kill="database",
                                        cluster=own_server)
    found = figures["found"]
    assert found["killed_mid_push"], figures["injected"]
    assert figures["injected"]["processes_killed"] >= 3  # the postmaster and its children
    assert found["rerun_exit_code"] == 0, found["rerun_error_tail"]
    assert figures["double_sends"] == 0, found["uploaded_twice"]
    assert figures["lost_rows"] == 0, (found["lost"], found["pushed_but_not_in_instantly"])
    assert found["selected"] > 0 and found["leads_in_instantly"] == found["sends_by_status"].get("pushed")
