"""The synthetic PropStream generator: deterministic, real-looking, and its truth is the truth."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from equity_assets.ingest.columns import PROPSTREAM_HEADERS
from equity_assets.ingest.parsing import read_upload
from equity_assets.ingest.synthetic import CASE, PUNCT, SPACES, SPELLING, UNIT, ZIP, write_propstream_csv

ROWS = 3000


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory):
    path = tmp_path_factory.mktemp("synthetic") / "export.csv"
    truth = write_propstream_csv(path, ROWS, seed=11)
    with open(path, newline="", encoding="utf-8") as handle:
        records = list(csv.reader(handle))
    return path, truth, records


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    first = write_propstream_csv(tmp_path / "a.csv", 500, seed=3)
    second = write_propstream_csv(tmp_path / "b.csv", 500, seed=3)
    third = write_propstream_csv(tmp_path / "c.csv", 500, seed=4)
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    assert np.array_equal(first.entity_ids, second.entity_ids)
    assert (tmp_path / "a.csv").read_bytes() != (tmp_path / "c.csv").read_bytes()
    assert not np.array_equal(first.entity_ids, third.entity_ids)


def test_all_42_headers_and_one_row_per_truth_entry(export) -> None:
    _, truth, records = export
    assert tuple(records[0]) == PROPSTREAM_HEADERS
    assert len(records) - 1 == truth.rows == ROWS
    assert all(len(record) == 42 for record in records)


def test_about_the_requested_share_are_duplicates_of_earlier_rows(export) -> None:
    _, truth, _ = export
    assert truth.is_duplicate.sum() == round(ROWS * 0.15)
    assert truth.n_entities == ROWS - truth.is_duplicate.sum()
    first_seen = pd.Series(truth.entity_ids).drop_duplicates().index.to_numpy()
    assert np.array_equal(np.sort(first_seen), np.flatnonzero(~truth.is_duplicate))
    # Entity ids are numbered in order of first appearance.
    assert np.array_equal(truth.entity_ids[first_seen], np.arange(truth.n_entities))


def test_values_look_like_a_real_export(export) -> None:
    _, truth, records = export
    rows = pd.DataFrame(records[1:], columns=records[0])
    assert (rows["Zip"].str.len() == 4).any()  # Excel ate the leading zero
    assert rows["APN"].str.contains(r"^[A-Z]{4} M:\d+ B:\d+ L:\d+$").any()
    companies = rows[rows["Company Name"] != ""]
    assert len(companies) and (companies["Owner 1 First Name"] == "").all()
    assert rows["Date Added to List"].str.fullmatch(r"\d\d/\d\d/\d{4}").all()
    assert rows["Last Sale Recording Date"].str.fullmatch(r"(\d{4}-\d\d-\d\d)?").all()
    assert rows["Owner Occupied"].isin(["Yes", "No"]).all()
    variants = np.bitwise_or.reduce(truth.variants)
    assert variants == CASE | PUNCT | SPELLING | UNIT | SPACES | ZIP  # every kind of variant occurs


def test_truth_matches_what_normalization_finds(export) -> None:
    path, truth, _ = export
    upload = read_upload(path, chunk_rows=1000)
    frame = pd.concat([chunk.frame for chunk in upload], ignore_index=True)
    assert upload.rejected_rows == 0 and len(frame) == ROWS
    hashes = frame.sort_values("row_number")["addr_hash"].to_numpy()
    scores = truth.pairwise_scores(hashes)
    assert (scores.precision, scores.recall) == (1.0, 1.0)
    assert scores.true_pairs > 0
    assert len(set(hashes)) == truth.n_entities  # distinct entities never normalize equal


def test_pairwise_scores_of_trivial_clusterings(export) -> None:
    _, truth, _ = export
    assert truth.pairwise_scores(truth.entity_ids).recall == 1.0
    singletons = truth.pairwise_scores(np.arange(truth.rows))
    assert (singletons.precision, singletons.recall, singletons.predicted_pairs) == (1.0, 0.0, 0)
    one_cluster = truth.pairwise_scores(np.zeros(truth.rows, dtype=int))
    assert one_cluster.recall == 1.0 and one_cluster.precision < 0.01
