"""read_upload end to end on small files: PropStream rows, CSV edge cases, rejects, COPY bytes."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from equity_assets.ingest.columns import PANDAS_DTYPES, PROPSTREAM_HEADERS, STAGING_COLUMN_NAMES
from equity_assets.ingest.parsing import (
    MAX_FIELD_CHARS,
    CsvFormatError,
    MissingColumnsError,
    UploadParse,
    frame_to_copy_csv,
    read_upload,
)

# Two real-looking PropStream rows: a person in CT whose ZIP lost its zero, a company in FL.
PERSON = {
    "Address": "123 N Main St", "Unit #": "Apt 4", "City": "Derby", "State": "CT", "Zip": "6418",
    "County": "New Haven", "APN": "DERB M:11 B:4 L:45", "Owner Occupied": "Yes",
    "Owner 1 First Name": "Mary", "Owner 1 Last Name": "O'Brien", "Company Name": "",
    "Owner 2 First Name": "James", "Owner 2 Last Name": "O'Brien", "Mailing Care of Name": "",
    "Mailing Address": "123 N Main St", "Mailing Unit #": "Apt 4", "Mailing City": "Derby",
    "Mailing State": "CT", "Mailing Zip": "6418", "Mailing County": "New Haven", "Do Not Mail": "No",
    "Property Type": "Duplex (2 units, any combination)", "Bedrooms": "3", "Total Bathrooms": "2",
    "Building Sqft": "1450", "Lot Size Sqft": "6534", "Effective Year Built": "1952",
    "Total Assessed Value": "154000", "Last Sale Recording Date": "1998-06-12", "Last Sale Amount": "98000",
    "Total Open Loans": "1", "Est. Remaining balance of Open Loans": "48880", "Est. Value": "220000",
    "Est. Loan-to-Value": "22.22", "Est. Equity": "171120", "MLS Status": "", "MLS Date": "",
    "MLS Amount": "", "Lien Amount": "", "Marketing Lists": "High Equity, Senior Owners",
    "Date Added to List": "03/15/2024", "Method of Add": "Saved Search",
}
COMPANY = {
    **PERSON,
    "Address": "4410 W Kennedy Blvd", "Unit #": "", "City": "Tampa", "State": "FL", "Zip": "33609",
    "County": "Hillsborough County", "APN": "A-23-29-18-4TV-000002-00015.0", "Owner Occupied": "No",
    "Owner 1 First Name": "", "Owner 1 Last Name": "", "Company Name": "Bayshore Holdings Llc",
    "Owner 2 First Name": "", "Owner 2 Last Name": "", "Mailing Care of Name": "C/O Registered Agent",
    "Mailing Address": "PO Box 2231", "Mailing Unit #": "", "Mailing City": "Wilmington",
    "Mailing State": "DE", "Mailing Zip": "19899", "Mailing County": "New Castle",
    "Property Type": "Single Family Residential", "Last Sale Recording Date": "2019-11-01",
    "Total Open Loans": "0", "Est. Remaining balance of Open Loans": "0", "Est. Loan-to-Value": "0",
    "Est. Equity": "220000", "MLS Status": "Active", "MLS Date": "2025-01-10", "MLS Amount": "249900",
    "Marketing Lists": "Absentee Owner", "Date Added to List": "1/7/2025",
}


def csv_text(rows: list[dict[str, str]], headers: list[str] | tuple[str, ...] = PROPSTREAM_HEADERS,
             line_end: str = "\r\n") -> str:
    """CSV text written by Python's csv module (RFC 4180 quoting)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator=line_end)
    writer.writerow(headers)
    for row in rows:
        writer.writerow([row.get(h, "") for h in headers])
    return out.getvalue()


def write(tmp_path: Path, text: str | bytes, name: str = "upload.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


def parse_all(path: Path, **options: object) -> tuple[UploadParse, pd.DataFrame, list, list]:
    """Iterate an upload fully: (upload, all staged rows, all rejects, all dropped values)."""
    upload = read_upload(path, **options)
    chunks = list(upload)
    frame = pd.concat([c.frame for c in chunks], ignore_index=True) if chunks else pd.DataFrame()
    rejects = [r for c in chunks for r in c.rejects]
    dropped = [d for c in chunks for d in c.dropped]
    return upload, frame, rejects, dropped


def value(frame: pd.DataFrame, row: int, column: str) -> object:
    item = frame[column].iloc[row]
    if pd.api.types.is_scalar(item) and pd.isna(item):
        return None
    return item.item() if isinstance(item, np.generic) else item


# --- PropStream rows ----------------------------------------------------------------------------
def test_propstream_rows_become_typed_staging_rows(tmp_path: Path) -> None:
    upload, frame, rejects, _ = parse_all(write(tmp_path, csv_text([PERSON, COMPANY])))
    assert rejects == []
    assert list(frame.columns) == list(STAGING_COLUMN_NAMES)
    assert {c: frame[c].dtype for c in frame.columns} == PANDAS_DTYPES
    assert frame["row_number"].tolist() == [1, 2]
    assert value(frame, 0, "property_zip") == "06418"  # the lost zero is back
    assert value(frame, 0, "apn") == "DERB M:11 B:4 L:45"
    assert value(frame, 0, "county") == "NEW HAVEN"
    assert value(frame, 0, "owner_occupied") is True
    assert value(frame, 0, "ltv") == 22.22
    assert value(frame, 0, "last_sale_date") == pd.Timestamp("1998-06-12")
    assert value(frame, 0, "date_added_to_list") == pd.Timestamp("2024-03-15")
    assert value(frame, 0, "marketing_lists") == ["High Equity", "Senior Owners"]
    assert value(frame, 0, "property_type") == "Duplex (2 units, any combination)"
    assert value(frame, 0, "last_name") == "O'Brien"
    assert len(value(frame, 0, "addr_hash")) == 64
    # A company owner with no first name is a valid lead.
    assert value(frame, 1, "first_name") is None
    assert value(frame, 1, "company_name") == "Bayshore Holdings Llc"
    assert value(frame, 1, "county") == "HILLSBOROUGH"
    assert value(frame, 1, "apn") == "A-23-29-18-4TV-000002-00015.0"
    assert value(frame, 1, "date_added_to_list") == pd.Timestamp("2025-01-07")
    assert value(frame, 1, "mls_amount") == 249900.0
    assert upload.file_rows == upload.staged_rows == 2 and upload.rejected_rows == 0
    assert upload.encoding == "utf-8" and upload.complete


def test_header_variants_case_spacing_punctuation_and_bom(tmp_path: Path) -> None:
    messy = [" address ", "UNIT", "city", "STATE", "Zip Code", "est loan to value", "EST. VALUE", "owner_1_first_name"]
    text = csv_text([{h: v for h, v in zip(messy, ["7 Elm St", "#2", "Ansonia", "ct", "6401", "10%", "$300,000", "Ann"])}], messy)
    _, frame, rejects, _ = parse_all(write(tmp_path, b"\xef\xbb\xbf" + text.encode()))
    assert rejects == []
    assert value(frame, 0, "property_address") == "7 Elm St"  # the BOM did not eat the first header
    assert (value(frame, 0, "property_unit"), value(frame, 0, "property_zip")) == ("#2", "06401")
    assert (value(frame, 0, "ltv"), value(frame, 0, "estimated_value")) == (10.0, 300000.0)
    assert value(frame, 0, "first_name") == "Ann"


def test_generic_csv_with_synonyms_and_contacts(tmp_path: Path) -> None:
    headers = ["Street", "Postal Code", "First Name", "Last Name", "Email Address", "Email 2", "Phone Number",
               "Phone 2", "Phone 2 DNC", "Phone 3", "Litigator"]
    row = ["9 Oak Ave", "02903", "Lee", "Kim", "LEE@Example.com", "not-an-email", "(401) 555-0142",
           "401.555.0199", "Yes", "12", "No"]
    _, frame, rejects, dropped = parse_all(write(tmp_path, csv_text([dict(zip(headers, row))], headers)))
    assert rejects == []
    assert value(frame, 0, "email") == "lee@example.com"
    assert value(frame, 0, "alt_emails") is None
    assert value(frame, 0, "phone") == "+14015550142"
    assert value(frame, 0, "alt_phones") == ["+14015550199"]
    assert value(frame, 0, "dnc_phones") == ["+14015550199"]
    assert value(frame, 0, "litigator") is False
    # Bad contacts are dropped and reported, never a reason to lose the lead.
    assert sorted((d.column, d.value) for d in dropped) == [("Email 2", "not-an-email"), ("Phone 3", "12")]


def test_missing_core_columns_fail_with_a_clear_message(tmp_path: Path) -> None:
    with pytest.raises(MissingColumnsError, match="property address"):
        read_upload(write(tmp_path, "City,State,Zip\nDerby,CT,06418\n"))
    with pytest.raises(MissingColumnsError, match=r"ZIP .* or else city and state \(missing: property_state\)"):
        read_upload(write(tmp_path, "Address,City\n1 Main St,Derby\n"))
    upload = read_upload(write(tmp_path, "Address,City,State\n1 Main St,Derby,CT\n"))
    assert upload.header_map.fields["property_state"] == 2


def test_cp1252_file_is_detected_and_decoded(tmp_path: Path) -> None:
    text = csv_text([{**PERSON, "Owner 1 Last Name": "Peña", "Address": "12 Núñez Street"}])
    _, frame, rejects, _ = parse_all(write(tmp_path, text.encode("cp1252")))
    upload = read_upload(tmp_path / "upload.csv")
    assert upload.encoding == "cp1252"
    assert rejects == []
    assert value(frame, 0, "last_name") == "Peña"
    assert value(frame, 0, "property_address") == "12 Núñez Street"


# --- CSV edge cases (csv-spectrum style) --------------------------------------------------------
def test_quotes_commas_and_newlines_inside_fields(tmp_path: Path) -> None:
    text = (
        'Address,City,State,Zip,Owner 1 Last Name,Mailing Care of Name\r\n'
        '"1 Main St, Rear",Derby,CT,06418,"Smith ""Bud""","line one\r\nline two"\r\n'
        '2 Main St,Derby,CT,06418,"",""\r\n'
    )
    _, frame, rejects, _ = parse_all(write(tmp_path, text))
    assert rejects == []
    assert value(frame, 0, "property_address") == "1 Main St, Rear"
    assert value(frame, 0, "last_name") == 'Smith "Bud"'
    assert value(frame, 0, "mailing_care_of") == "line one\r\nline two"
    assert value(frame, 1, "last_name") is None
    assert frame["row_number"].tolist() == [1, 2]


def test_lf_and_crlf_files_parse_the_same(tmp_path: Path) -> None:
    _, lf, _, _ = parse_all(write(tmp_path, csv_text([PERSON, COMPANY], line_end="\n"), "lf.csv"))
    _, crlf, _, _ = parse_all(write(tmp_path, csv_text([PERSON, COMPANY], line_end="\r\n"), "crlf.csv"))
    pd.testing.assert_frame_equal(lf, crlf)


def test_empty_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CsvFormatError, match="empty"):
        read_upload(write(tmp_path, b""))


def test_header_only_file_has_zero_rows(tmp_path: Path) -> None:
    for name, text in (("a.csv", "Address,Zip\r\n"), ("b.csv", "Address,Zip")):
        upload, frame, rejects, _ = parse_all(write(tmp_path, text, name))
        assert (upload.file_rows, len(frame), rejects, upload.complete) == (0, 0, [], True)


def test_unterminated_quote_at_the_end_fails_the_whole_upload(tmp_path: Path) -> None:
    text = 'Address,Zip\n1 Main St,06418\n"2 Main St,06418\n3 Main St,06418\n'
    with pytest.raises(CsvFormatError) as error:
        read_upload(write(tmp_path, text))
    assert error.value.line == 3
    assert "unterminated quoted field" in str(error.value)


def test_stray_quote_that_would_swallow_rows_fails_with_its_line(tmp_path: Path) -> None:
    # A lenient parser reads rows 2-4 as one field that ends at the quote before "Oak".
    text = 'Address,Zip\n1 Main St,06418\n"2 Main St,06418\n3 Main St,06418\n4 "Oak" St,06418\n5 Elm St,06418\n'
    with pytest.raises(CsvFormatError) as error:
        read_upload(write(tmp_path, text))
    assert error.value.line == 5
    assert "closing quote is followed by 'O'" in str(error.value)


def test_quote_inside_an_unquoted_field_is_text(tmp_path: Path) -> None:
    _, frame, rejects, _ = parse_all(write(tmp_path, 'Address,Zip\n12" Pipe Rd,06418\n'))
    assert rejects == [] and value(frame, 0, "property_address") == '12" Pipe Rd'


def test_a_field_over_the_size_limit_rejects_its_row_only(tmp_path: Path) -> None:
    long = "x" * (MAX_FIELD_CHARS + 1)
    text = f'Address,Zip,Owner 1 Last Name\n1 Main St,06418,Lee\n2 Main St,06418,"{long}"\n3 Main St,06418,Kim\n'
    upload, frame, rejects, _ = parse_all(write(tmp_path, text))
    assert frame["row_number"].tolist() == [1, 3] and frame["last_name"].tolist() == ["Lee", "Kim"]
    assert [r.row_number for r in rejects] == [2]
    assert "'Owner 1 Last Name' is 131,073 characters long" in rejects[0].reason
    assert len(rejects[0].raw["Owner 1 Last Name"]) < 1_100  # kept in the DLQ, cut
    assert (upload.file_rows, upload.staged_rows, upload.rejected_rows) == (3, 2, 1)


def test_a_stray_nul_byte_rejects_its_row_only(tmp_path: Path) -> None:
    data = b"Address,Zip,City\n1 Main St,06418,Derby\n2 Ma\x00in St,06418,Derby\n3 Main St,06418,Der\x00by\n4 Oak,06418,Derby\n"
    upload, frame, rejects, _ = parse_all(write(tmp_path, data, "nul.csv"))
    assert frame["row_number"].tolist() == [1, 4]
    assert [(r.row_number, "NUL" in r.reason) for r in rejects] == [(2, True), (3, True)]
    assert "'Address'" in rejects[0].reason and "'City'" in rejects[1].reason
    assert "\x00" not in str(rejects[0].raw) and rejects[0].raw["Address"] == "2 Ma\\0in St"


def test_binary_and_utf16_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(CsvFormatError, match="NUL") as error:
        read_upload(write(tmp_path, "Address,Zip\n1 Main St,06418\n".encode("utf-16-le"), "u16le.csv"))
    assert error.value.line == 1
    with pytest.raises(CsvFormatError, match="UTF-16"):
        read_upload(write(tmp_path, "Address,Zip\n".encode("utf-16"), "u16.csv"))


def test_rows_with_the_wrong_number_of_fields_are_rejected_not_padded(tmp_path: Path) -> None:
    text = "Address,Zip,City\n1 Main St,06418,Derby\n2 Main St,06418\n\n3 Main St,06418,Derby,extra\n4 Main St,06418,Derby\n"
    upload, frame, rejects, _ = parse_all(write(tmp_path, text))
    assert frame["row_number"].tolist() == [1, 4]
    assert [(r.row_number, r.column) for r in rejects] == [(2, None), (3, None)]
    assert rejects[0].reason == "row has 2 field(s); the header has 3"
    assert rejects[1].raw == {"Address": "3 Main St", "Zip": "06418", "City": "Derby", "_extra_1": "extra"}
    assert upload.staged_rows + upload.rejected_rows == upload.file_rows == 4


# --- bad rows -----------------------------------------------------------------------------------
def test_bad_rows_are_rejected_with_column_and_reason_good_rows_kept(tmp_path: Path) -> None:
    bad = {
        2: ({"Last Sale Recording Date": "2021-02-30"}, "last_sale_date", "not a valid date"),
        3: ({"State": "XX"}, "property_state", "not a US state"),
        4: ({"Zip": "ABCDE", "City": "", "State": ""}, "property_zip", "not a 5-digit ZIP ('ABCDE')"),
        5: ({"Est. Value": "-5"}, "estimated_value", "must not be negative (-5.0)"),
        6: ({"Est. Loan-to-Value": "5000"}, "ltv", "outside the plausible range 0 to"),
        7: ({"Address": "   "}, "property_address", "required, but the cell is empty"),
        8: ({"Zip": "", "City": ""}, "property_zip", "no ZIP and no city + state"),
        9: ({"Bedrooms": "three"}, "bedrooms", "not a whole number"),
        10: ({"Owner Occupied": "Maybe"}, "owner_occupied", "not a yes/no value"),
        11: ({"Effective Year Built": "1492"}, "year_built", "outside the plausible range"),
    }
    rows = [PERSON] + [{**PERSON, **changes} for changes, _, _ in bad.values()] + [COMPANY]
    upload, frame, rejects, _ = parse_all(write(tmp_path, csv_text(rows)))
    assert frame["row_number"].tolist() == [1, 12]
    assert [r.row_number for r in rejects] == list(bad)
    for reject in rejects:
        _, column, reason = bad[reject.row_number]
        assert reject.column == column
        assert reason in reject.reason
        assert reject.raw["APN"] == "DERB M:11 B:4 L:45"  # the original row travels with the reject
    assert rejects[0].reason == "last_sale_date: not a valid date (YYYY-MM-DD or MM/DD/YYYY) ('2021-02-30')"
    assert upload.staged_rows + upload.rejected_rows == upload.file_rows == 12


def test_a_row_with_several_problems_is_one_reject_listing_them_all(tmp_path: Path) -> None:
    row = {**PERSON, "Bedrooms": "x", "State": "ZZ", "MLS Date": "soon"}
    _, frame, rejects, _ = parse_all(write(tmp_path, csv_text([row])))
    assert len(frame) == 0 and len(rejects) == 1
    assert rejects[0].column == "property_state,bedrooms,mls_date"
    assert rejects[0].reason.count(";") == 2


def test_year_built_zero_means_unknown(tmp_path: Path) -> None:
    _, frame, rejects, _ = parse_all(write(tmp_path, csv_text([{**PERSON, "Effective Year Built": "0"}])))
    assert rejects == [] and value(frame, 0, "year_built") is None


def test_chunks_threads_and_row_numbers_are_consistent(tmp_path: Path) -> None:
    rows = [{**PERSON, "Address": f"{n} Oak St"} for n in range(1, 24)]
    rows[9] = {**rows[9], "Bedrooms": "many"}
    path = write(tmp_path, csv_text(rows))
    one, frame_one, rejects_one, _ = parse_all(path, chunk_rows=1000, threads=1)
    many, frame_many, rejects_many, _ = parse_all(path, chunk_rows=4, threads=2)
    pd.testing.assert_frame_equal(frame_one, frame_many)
    assert [r.row_number for r in rejects_many] == [r.row_number for r in rejects_one] == [10]
    assert frame_many["row_number"].tolist() == [n for n in range(1, 24) if n != 10]
    assert many.file_rows == one.file_rows == 23
    with pytest.raises(RuntimeError, match="only once"):
        list(many)


# --- COPY bytes ---------------------------------------------------------------------------------
NAUGHTY = [
    "=cmd|' /C calc'!A0", "@SUM(1+1)*cmd|' /C calc'!A0", "+1+1", "-2+3", "\t=1+1", "\r=1+1",
    "Robert'); DROP TABLE leads;--", "\u202eevil", "zero\u200bwidth", "null", "None", "NULL", "\\N", "\\.",
    'say "hi"', "a,b", "multi\nline", "back\\slash", "{braces}", "Peña",
]


def parse_pg_array(text: str) -> list[str | None]:
    """A minimal reader for the array literals frame_to_copy_csv writes: {"a","b\\"c"} or NULL items."""
    assert text.startswith("{") and text.endswith("}")
    items: list[str | None] = []
    body, i = text[1:-1], 0
    while i < len(body):
        if body.startswith("NULL", i):
            items.append(None)
            i += 4
        else:
            assert body[i] == '"'
            i += 1
            chars = []
            while body[i] != '"':
                if body[i] == "\\":
                    i += 1
                chars.append(body[i])
                i += 1
            items.append("".join(chars))
            i += 1
        if i < len(body):
            assert body[i] == ","
            i += 1
    return items


def test_naughty_strings_survive_parsing_and_copy_bytes(tmp_path: Path) -> None:
    rows = [{**PERSON, "Owner 1 Last Name": text, "Company Name": text, "Marketing Lists": "A"} for text in NAUGHTY]
    _, frame, rejects, _ = parse_all(write(tmp_path, csv_text(rows)))
    assert rejects == []
    assert frame["last_name"].tolist() == NAUGHTY
    records = list(csv.reader(io.StringIO(frame_to_copy_csv(frame).decode("utf-8"), newline="")))
    position = STAGING_COLUMN_NAMES.index("last_name")
    assert [record[position] for record in records] == NAUGHTY
    assert all(len(record) == len(STAGING_COLUMN_NAMES) for record in records)


def test_copy_bytes_nulls_empty_strings_types_and_arrays() -> None:
    items = ['a"b', "c,d", "e\\f", "{g}", "NULL", "", "h\ni"]
    frame = pd.DataFrame({
        "name": pd.array(["x", "", None], dtype=pd.StringDtype("pyarrow")),
        "count": pd.array([1, None, 3], dtype="Int64"),
        "amount": pd.array([1234.5, None, 0.0], dtype="Float64"),
        "flag": pd.array([True, None, False], dtype="boolean"),
        "day": pd.to_datetime(["2024-03-15", None, "1999-12-31"]),
        "tags": pd.Series([items, None, []], dtype=pd.ArrowDtype(pa.list_(pa.string()))),
    })
    data = frame_to_copy_csv(frame, tuple(frame.columns))
    assert b'\n"",,,,,\n' in data  # the empty string is quoted, NULLs are bare empty fields
    records = list(csv.reader(io.StringIO(data.decode(), newline="")))
    assert records[0][:5] == ["x", "1", "1234.5", "true", "2024-03-15"]
    assert records[2][:5] == ["", "3", "0", "false", "1999-12-31"]
    assert parse_pg_array(records[0][5]) == items
    assert records[2][5] == "{}"


def test_copy_bytes_refuse_nul_characters() -> None:
    frame = pd.DataFrame({"name": pd.array(["a\x00b"], dtype=pd.StringDtype("pyarrow"))})
    with pytest.raises(ValueError, match="NUL"):
        frame_to_copy_csv(frame, ("name",))


def test_chunks_can_carry_their_copy_bytes_with_constant_columns(tmp_path: Path) -> None:
    upload = read_upload(write(tmp_path, csv_text([PERSON, COMPANY])), copy_csv=True,
                         copy_constants={"upload_id": "u-1"})
    chunk = next(iter(upload))
    assert upload.copy_columns == ("upload_id", *STAGING_COLUMN_NAMES)
    assert chunk.copy_csv == frame_to_copy_csv(chunk.frame, constants={"upload_id": "u-1"})
    records = list(csv.reader(io.StringIO(chunk.copy_csv.decode(), newline="")))
    assert [r[0] for r in records] == ["u-1", "u-1"]
    assert [r[1] for r in records] == ["1", "2"]


@pytest.mark.parametrize("chunk_rows", [1, 2, 5, 100])
def test_row_numbers_stay_exact_around_malformed_rows_at_any_chunk_size(tmp_path: Path, chunk_rows: int) -> None:
    lines, malformed = ["Address,Zip,City"], set()
    for n in range(1, 40):
        if n % 7 == 0:
            lines.append(f"{n} Main St,06418")
        elif n % 11 == 0:
            lines.append(f"{n} Main St,06418,Derby,x,y")
        else:
            lines.append(f"{n} Main St,06418,Derby")
            continue
        malformed.add(n)
    upload = read_upload(write(tmp_path, "\n".join(lines) + "\n"), chunk_rows=chunk_rows)
    staged, rejected = [], []
    for chunk in upload:
        numbers = chunk.frame["row_number"].tolist()
        assert [int(a.split()[0]) for a in chunk.frame["property_address"]] == numbers
        staged += numbers
        rejected += [r.row_number for r in chunk.rejects]
    assert sorted(rejected) == sorted(malformed)
    assert sorted(staged + rejected) == list(range(1, 40)) and upload.file_rows == 39
