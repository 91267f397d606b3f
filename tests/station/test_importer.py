"""Tests of the CSV import: dialects, checks, error messages and atomicity."""

from __future__ import annotations

import codecs
import math
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from linksight.schema import DatasetSchema
from station import csv_encoding, importer
from station.csv_encoding import scan_file
from station.csv_errors import CsvImportError
from station.importer import import_csv
from station.store import DatasetStore

HEADER = "patient_id;inst;time;status;age;sex;ph.ecog;wt.loss;diagnosed;city"
ROWS = [
    "000123456;3;306;2;74;1;1;1,5;01-02-2020;Den Haag",
    "000123457;3;455;2;68;1;0;;15-03-2019;Zoë",
    "000123458;40;1010;1;56;2;3;-3,25;;Utrecht",
]


def lung_schema(**csv: str) -> DatasetSchema:
    """Return a schema shaped like the NCCTG lung data, plus an id and a date."""
    return DatasetSchema.model_validate(
        {
            "name": "lung",
            "max_rows": 1000,
            "csv": csv,
            "columns": [
                {
                    "name": "patient_id",
                    "type": "text",
                    "role": "identifier",
                    "nullable": False,
                },
                {"name": "inst", "type": "integer", "min": 1, "max": 40},
                {"name": "time", "type": "integer", "min": 0, "max": 5000},
                {"name": "status", "type": "categorical", "levels": [1, 2]},
                {
                    "name": "age",
                    "type": "integer",
                    "min": 18,
                    "max": 110,
                    "nullable": False,
                },
                {"name": "sex", "type": "categorical", "levels": [1, 2]},
                {"name": "ph.ecog", "type": "categorical", "levels": [0, 1, 2, 3]},
                {"name": "wt.loss", "type": "float", "min": -100, "max": 100},
                {"name": "diagnosed", "type": "date"},
                {"name": "city", "type": "text"},
            ],
        }
    )


def write_csv(
    folder: Path, lines: list[str], encoding: str = "utf-8", newline: str = "\n"
) -> Path:
    path = folder / "lung.csv"
    path.write_bytes(newline.join(lines).encode(encoding) + newline.encode())
    return path


def to_comma_separated(line: str) -> str:
    """Turn a semicolon line with decimal commas into a comma line with points."""
    return line.replace(",", ".").replace(";", ",")


def replace_cell(line: str, column: str, value: str) -> str:
    cells = line.split(";")
    cells[HEADER.split(";").index(column)] = value
    return ";".join(cells)


def rejected(tmp_path: Path, lines: list[str], **csv: str) -> CsvImportError:
    """Import `lines`, expect a rejection and return it."""
    store = DatasetStore(tmp_path / "station")
    with pytest.raises(CsvImportError) as raised:
        import_csv(store, write_csv(tmp_path, lines), lung_schema(**csv))
    return raised.value


def stored_table(tmp_path: Path) -> pa.Table:
    current = DatasetStore(tmp_path / "station").current("lung")
    assert current is not None
    return pq.read_table(current.path)


def test_semicolon_decimal_comma(tmp_path: Path) -> None:
    store = DatasetStore(tmp_path / "station")

    report = import_csv(store, write_csv(tmp_path, [HEADER, *ROWS]), lung_schema())

    assert report.rows == 3
    assert report.version == 1
    assert report.dataset == "lung"
    assert report.dialect.separator == ";"
    assert report.dialect.decimal == ","
    assert report.dialect.encoding == "utf-8"
    assert report.warnings == ()


def test_decimal_comma_values(tmp_path: Path) -> None:
    import_csv(
        DatasetStore(tmp_path / "station"),
        write_csv(tmp_path, [HEADER, *ROWS]),
        lung_schema(),
    )

    losses = stored_table(tmp_path).column("wt.loss").to_pylist()

    assert losses == [1.5, None, -3.25]


def test_comma_decimal_point(tmp_path: Path) -> None:
    lines = [to_comma_separated(line) for line in [HEADER, *ROWS]]
    store = DatasetStore(tmp_path / "station")

    report = import_csv(store, write_csv(tmp_path, lines), lung_schema())

    assert report.dialect.separator == ","
    assert report.dialect.decimal == "."
    assert stored_table(tmp_path).column("wt.loss").to_pylist() == [1.5, None, -3.25]


def test_comma_with_quoted_decimal_comma(tmp_path: Path) -> None:
    lines = [to_comma_separated(line) for line in [HEADER, *ROWS]]
    lines[1] = lines[1].replace(",1.5,", ',"1,5",')
    store = DatasetStore(tmp_path / "station")

    report = import_csv(store, write_csv(tmp_path, lines[:2]), lung_schema())

    assert report.dialect.decimal == ","
    assert stored_table(tmp_path).column("wt.loss").to_pylist() == [1.5]


def test_tab_separator(tmp_path: Path) -> None:
    lines = [line.replace(";", "\t") for line in [HEADER, *ROWS]]
    store = DatasetStore(tmp_path / "station")

    report = import_csv(store, write_csv(tmp_path, lines), lung_schema())

    assert report.dialect.separator == "\t"
    assert report.rows == 3


def test_separator_set_in_schema(tmp_path: Path) -> None:
    store = DatasetStore(tmp_path / "station")
    schema = lung_schema(separator=";", decimal=",")

    report = import_csv(store, write_csv(tmp_path, [HEADER, *ROWS]), schema)

    assert report.dialect.separator == ";"
    assert report.dialect.decimal == ","


def test_utf8_with_bom(tmp_path: Path) -> None:
    store = DatasetStore(tmp_path / "station")

    path = write_csv(tmp_path, [HEADER, *ROWS], encoding="utf-8-sig")
    report = import_csv(store, path, lung_schema())

    assert path.read_bytes().startswith(codecs.BOM_UTF8)
    assert report.dialect.encoding == "utf-8-sig"
    assert stored_table(tmp_path).column("patient_id")[0].as_py() == "000123456"
    assert stored_table(tmp_path).column("city")[1].as_py() == "Zoë"


def test_utf8_without_bom(tmp_path: Path) -> None:
    import_csv(
        DatasetStore(tmp_path / "station"),
        write_csv(tmp_path, [HEADER, *ROWS]),
        lung_schema(),
    )

    assert stored_table(tmp_path).column("city")[1].as_py() == "Zoë"


def test_cp1252_text(tmp_path: Path) -> None:
    lines = [HEADER, *ROWS]
    lines[3] = lines[3].replace("Utrecht", "Café Zuid")
    store = DatasetStore(tmp_path / "station")

    report = import_csv(store, write_csv(tmp_path, lines, "cp1252"), lung_schema())

    cities = stored_table(tmp_path).column("city").to_pylist()
    assert report.dialect.encoding == "cp1252"
    assert cities == ["Den Haag", "Zoë", "Café Zuid"]
    assert len(report.warnings) == 1
    assert "not valid UTF-8 (first at line 3)" in report.warnings[0]


def test_dates_day_month_year(tmp_path: Path) -> None:
    import_csv(
        DatasetStore(tmp_path / "station"),
        write_csv(tmp_path, [HEADER, *ROWS]),
        lung_schema(),
    )

    dates = stored_table(tmp_path).column("diagnosed")

    assert dates.type == pa.date32()
    assert dates.to_pylist() == [date(2020, 2, 1), date(2019, 3, 15), None]


def test_date_format_from_schema(tmp_path: Path) -> None:
    schema = lung_schema()
    schema.column("diagnosed").date_format = "%Y-%m-%d"
    lines = [HEADER, replace_cell(ROWS[0], "diagnosed", "2020-02-01")]

    import_csv(DatasetStore(tmp_path / "station"), write_csv(tmp_path, lines), schema)

    assert stored_table(tmp_path).column("diagnosed")[0].as_py() == date(2020, 2, 1)


def test_identifier_keeps_leading_zeros(tmp_path: Path) -> None:
    import_csv(
        DatasetStore(tmp_path / "station"),
        write_csv(tmp_path, [HEADER, *ROWS]),
        lung_schema(),
    )

    ids = stored_table(tmp_path).column("patient_id")

    assert ids.type == pa.string()
    assert ids.to_pylist() == ["000123456", "000123457", "000123458"]


def test_stored_types(tmp_path: Path) -> None:
    import_csv(
        DatasetStore(tmp_path / "station"),
        write_csv(tmp_path, [HEADER, *ROWS]),
        lung_schema(),
    )

    table = stored_table(tmp_path)
    frame = table.to_pandas()

    assert table.schema.field("inst").type == pa.int64()
    assert table.schema.field("ph.ecog").type == pa.int64()
    assert table.schema.field("wt.loss").type == pa.float64()
    assert str(frame["age"].dtype) == "Int64"
    assert str(frame["sex"].dtype) == "Int64"
    assert frame["ph.ecog"].tolist() == [1, 0, 3]


@pytest.mark.parametrize("token", ["", "NA", "NaN", "NULL", ".", "  "])
def test_missing_value_tokens(tmp_path: Path, token: str) -> None:
    lines = [HEADER, replace_cell(ROWS[0], "inst", token)]

    import_csv(
        DatasetStore(tmp_path / "station"), write_csv(tmp_path, lines), lung_schema()
    )

    assert stored_table(tmp_path).column("inst").to_pylist() == [None]


def test_missing_text_is_null(tmp_path: Path) -> None:
    lines = [HEADER, replace_cell(ROWS[0], "city", "NA")]

    import_csv(
        DatasetStore(tmp_path / "station"), write_csv(tmp_path, lines), lung_schema()
    )

    assert stored_table(tmp_path).column("city").to_pylist() == [None]


def test_nan_float_stored_as_null(tmp_path: Path) -> None:
    lines = [HEADER, replace_cell(ROWS[0], "wt.loss", "NaN")]

    import_csv(
        DatasetStore(tmp_path / "station"), write_csv(tmp_path, lines), lung_schema()
    )

    value = stored_table(tmp_path).column("wt.loss")[0].as_py()
    assert value is None
    assert not (isinstance(value, float) and math.isnan(value))


def test_integer_with_zero_fraction(tmp_path: Path) -> None:
    lines = [HEADER, replace_cell(ROWS[0], "age", "74,0"), ROWS[1]]

    import_csv(
        DatasetStore(tmp_path / "station"), write_csv(tmp_path, lines), lung_schema()
    )

    assert stored_table(tmp_path).column("age").to_pylist() == [74, 68]


def test_categorical_level_written_as_float(tmp_path: Path) -> None:
    lines = [HEADER, replace_cell(ROWS[0], "sex", "2,0")]

    import_csv(
        DatasetStore(tmp_path / "station"), write_csv(tmp_path, lines), lung_schema()
    )

    assert stored_table(tmp_path).column("sex").to_pylist() == [2]


def test_categorical_string_levels(tmp_path: Path) -> None:
    schema = DatasetSchema.model_validate(
        {
            "name": "lung",
            "columns": [
                {"name": "stage", "type": "categorical", "levels": ["I", "II", 3]},
                {"name": "age", "type": "integer", "min": 0, "max": 120},
            ],
        }
    )
    path = write_csv(tmp_path, ["stage;age", "II;70", "3;71", "NA;72"])

    import_csv(DatasetStore(tmp_path / "station"), path, schema)

    stages = stored_table(tmp_path).column("stage")
    assert stages.type == pa.string()
    assert stages.to_pylist() == ["II", "3", None]


def test_columns_in_any_order(tmp_path: Path) -> None:
    names = HEADER.split(";")
    order = list(reversed(range(len(names))))
    lines = [";".join(line.split(";")[i] for i in order) for line in [HEADER, *ROWS]]

    import_csv(
        DatasetStore(tmp_path / "station"), write_csv(tmp_path, lines), lung_schema()
    )

    table = stored_table(tmp_path)
    assert table.schema.names == names
    assert table.column("age").to_pylist() == [74, 68, 56]


def test_crlf_line_endings(tmp_path: Path) -> None:
    path = write_csv(tmp_path, [HEADER, *ROWS], newline="\r\n")

    report = import_csv(DatasetStore(tmp_path / "station"), path, lung_schema())

    assert report.rows == 3
    assert stored_table(tmp_path).column("city")[2].as_py() == "Utrecht"


def test_cr_line_endings_error_line(tmp_path: Path) -> None:
    lines = [HEADER, *ROWS, replace_cell(ROWS[0], "age", "abc")]
    path = write_csv(tmp_path, lines, newline="\r")

    with pytest.raises(CsvImportError) as raised:
        import_csv(DatasetStore(tmp_path / "station"), path, lung_schema())

    assert 'line 5, column "age": value "abc" is not an integer' in str(raised.value)


def test_quoted_line_break_in_value(tmp_path: Path) -> None:
    lines = [
        HEADER,
        replace_cell(ROWS[0], "city", '"Den\nHaag"'),
        replace_cell(ROWS[1], "age", "abc"),
    ]

    error = rejected(tmp_path, lines)

    assert 'line 4, column "age": value "abc" is not an integer' in str(error)


def test_empty_lines_skipped(tmp_path: Path) -> None:
    lines = [HEADER, ROWS[0], "", ROWS[1], ""]

    report = import_csv(
        DatasetStore(tmp_path / "station"), write_csv(tmp_path, lines), lung_schema()
    )

    assert report.rows == 2
    assert report.warnings == ("skipped 2 empty lines",)


def test_second_import_is_next_version(tmp_path: Path) -> None:
    store = DatasetStore(tmp_path / "station")
    import_csv(store, write_csv(tmp_path, [HEADER, *ROWS]), lung_schema())

    report = import_csv(store, write_csv(tmp_path, [HEADER, ROWS[0]]), lung_schema())

    current = store.current("lung")
    assert report.version == 2
    assert current is not None
    assert current.version == 2
    assert current.rows == 1


def test_report_hash_matches_manifest(tmp_path: Path) -> None:
    store = DatasetStore(tmp_path / "station")

    report = import_csv(store, write_csv(tmp_path, [HEADER, *ROWS]), lung_schema())

    current = store.current("lung")
    assert current is not None
    assert current.source_sha256 == report.source_sha256
    assert len(report.source_sha256) == 64


# Rejected files: each message names the line (header = line 1) and column.


def test_bad_integer(tmp_path: Path) -> None:
    lines = [HEADER, ROWS[0], replace_cell(ROWS[1], "age", "abc")]

    error = rejected(tmp_path, lines)

    assert 'line 3, column "age": value "abc" is not an integer' in str(error)
    assert error.error_count == 1


def test_fraction_in_integer(tmp_path: Path) -> None:
    lines = [HEADER, replace_cell(ROWS[0], "age", "74,5")]

    error = rejected(tmp_path, lines)

    assert 'line 2, column "age": value "74,5" is not an integer' in str(error)


def test_above_maximum(tmp_path: Path) -> None:
    lines = [HEADER, *ROWS, replace_cell(ROWS[0], "age", "150")]

    error = rejected(tmp_path, lines)

    expected = 'line 5, column "age": value "150" is above the maximum 110'
    assert expected in str(error)
    assert "raise max in the schema" in str(error)


def test_below_minimum(tmp_path: Path) -> None:
    lines = [HEADER, replace_cell(ROWS[0], "inst", "0")]

    error = rejected(tmp_path, lines)

    assert 'line 2, column "inst": value "0" is below the minimum 1' in str(error)


def test_float_out_of_range(tmp_path: Path) -> None:
    lines = [HEADER, replace_cell(ROWS[0], "wt.loss", "-100,5")]

    error = rejected(tmp_path, lines)

    expected = 'line 2, column "wt.loss": value "-100,5" is below the minimum -100'
    assert expected in str(error)


@pytest.mark.parametrize("value", ["abc", "inf", "nan", "1,5,0", "0x10"])
def test_float_not_a_number(tmp_path: Path, value: str) -> None:
    lines = [HEADER, ROWS[0], replace_cell(ROWS[0], "wt.loss", value)]

    error = rejected(tmp_path, lines)

    expected = f'line 3, column "wt.loss": value "{value}" is not a number'
    assert expected in str(error)


def test_unknown_level(tmp_path: Path) -> None:
    lines = [HEADER, ROWS[0], ROWS[1], replace_cell(ROWS[2], "sex", "3")]

    error = rejected(tmp_path, lines)

    expected = 'line 4, column "sex": value "3" is not one of the levels 1, 2'
    assert expected in str(error)


def test_ragged_row(tmp_path: Path) -> None:
    lines = [HEADER, ROWS[0], ROWS[1] + ";extra", ROWS[2]]

    error = rejected(tmp_path, lines)

    expected = "line 3: the row has 11 fields, but the header has 10"
    assert expected in str(error)
    assert error.errors[0].column is None


def test_short_row(tmp_path: Path) -> None:
    lines = [HEADER, ROWS[0], "000123459;3"]

    error = rejected(tmp_path, lines)

    assert "line 3: the row has 2 fields, but the header has 10" in str(error)


def test_missing_column(tmp_path: Path) -> None:
    header = HEADER.replace(";age", "")
    lines = [header] + [
        ";".join(c for i, c in enumerate(row.split(";")) if i != 4) for row in ROWS
    ]

    error = rejected(tmp_path, lines)

    expected = (
        'line 1, column "age": the schema declares this column, but the header '
        "does not contain it"
    )
    assert expected in str(error)


def test_undeclared_column(tmp_path: Path) -> None:
    lines = [HEADER + ";bsn", *(row + ";123456782" for row in ROWS)]

    error = rejected(tmp_path, lines)

    expected = 'line 1, column "bsn": the column is not declared in the schema'
    assert expected in str(error)
    assert "did you mean" not in str(error)


def test_misspelled_column_suggestion(tmp_path: Path) -> None:
    lines = [HEADER.replace(";age;", ";Age;"), *ROWS]

    error = rejected(tmp_path, lines)

    assert 'line 1, column "Age": the column is not declared' in str(error)
    assert '(did you mean "age"?)' in str(error)
    assert error.error_count == 2


def test_duplicate_header_name(tmp_path: Path) -> None:
    lines = [HEADER + ";age", *(row + ";70" for row in ROWS)]

    error = rejected(tmp_path, lines)

    assert 'line 1, column "age": the header names this column 2 times' in str(error)


def test_empty_header_name(tmp_path: Path) -> None:
    lines = [HEADER + ";", *(row + ";" for row in ROWS)]

    error = rejected(tmp_path, lines)

    assert "line 1: column 11 of the header has no name" in str(error)


def test_missing_in_required_column(tmp_path: Path) -> None:
    lines = [HEADER, ROWS[0], replace_cell(ROWS[1], "patient_id", "")]

    error = rejected(tmp_path, lines)

    expected = 'line 3, column "patient_id": value is missing, but the schema'
    assert expected in str(error)
    assert "nullable = false" in str(error)


def test_missing_token_in_required_column(tmp_path: Path) -> None:
    lines = [HEADER, replace_cell(ROWS[0], "age", "NA")]

    error = rejected(tmp_path, lines)

    assert 'line 2, column "age": value is missing ("NA")' in str(error)


@pytest.mark.parametrize("value", ["31-02-2020", "2020-02-01", "1-2-20", "today"])
def test_bad_date(tmp_path: Path, value: str) -> None:
    lines = [HEADER, ROWS[0], replace_cell(ROWS[1], "diagnosed", value)]

    error = rejected(tmp_path, lines)

    expected = (
        f'line 3, column "diagnosed": value "{value}" is not a valid date in the '
        "format %d-%m-%Y"
    )
    assert expected in str(error)


def test_mixed_decimal_separators(tmp_path: Path) -> None:
    lines = [HEADER, ROWS[0], replace_cell(ROWS[1], "wt.loss", "2.5")]

    error = rejected(tmp_path, lines)

    expected = (
        'line 3, column "wt.loss": value "2.5" has a decimal point, but the file '
        'uses a decimal comma (detected from line 2, column "wt.loss")'
    )
    assert expected in str(error)


def test_decimal_set_in_schema(tmp_path: Path) -> None:
    lines = [HEADER, replace_cell(ROWS[0], "wt.loss", "1.5")]

    error = rejected(tmp_path, lines, decimal=",")

    expected = (
        'line 2, column "wt.loss": value "1.5" has a decimal point, but the file '
        "uses a decimal comma (set by csv.decimal in the schema)"
    )
    assert expected in str(error)


def test_too_many_rows(tmp_path: Path) -> None:
    schema = lung_schema()
    schema.max_rows = 2
    path = write_csv(tmp_path, [HEADER, *ROWS])

    with pytest.raises(CsvImportError) as raised:
        import_csv(DatasetStore(tmp_path / "station"), path, schema)

    assert "line 4: the file has more than 2 rows" in str(raised.value)


def test_unterminated_quote(tmp_path: Path) -> None:
    lines = [HEADER, ROWS[0], replace_cell(ROWS[1], "city", '"Zoë'), ROWS[2]]

    error = rejected(tmp_path, lines)

    assert "line 4: the line is not valid CSV" in str(error)


def test_unterminated_quote_in_header(tmp_path: Path) -> None:
    header = HEADER.replace(";city", ';"city')

    error = rejected(tmp_path, [header, *ROWS])

    assert error.error_count == 1
    assert str(error.errors[0]) == (
        "line 1: the header is not valid CSV (unexpected end of data); check "
        "the quotes in the header line"
    )


def test_errors_in_file_order(tmp_path: Path) -> None:
    lines = [
        HEADER,
        replace_cell(replace_cell(ROWS[0], "wt.loss", "x"), "inst", "x"),
        ROWS[1] + ";extra",
        replace_cell(ROWS[2], "sex", "9"),
    ]

    error = rejected(tmp_path, lines)

    located = [(e.line, e.column) for e in error.errors]
    assert located == [(2, "inst"), (2, "wt.loss"), (3, None), (4, "sex")]


def test_error_list_truncated(tmp_path: Path) -> None:
    bad = replace_cell(ROWS[0], "age", "abc")
    lines = [HEADER] + [bad] * 25

    error = rejected(tmp_path, lines)

    assert error.error_count == 25
    assert len(error.errors) == 20
    assert str(error).endswith("... and 5 more")
    assert str(error).startswith("lung.csv was not imported because of 25 errors:")


def test_header_only(tmp_path: Path) -> None:
    error = rejected(tmp_path, [HEADER])

    assert "the file has a header but no rows" in str(error)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "lung.csv"
    path.write_bytes(b"")

    with pytest.raises(CsvImportError, match="the file is empty"):
        import_csv(DatasetStore(tmp_path / "station"), path, lung_schema())


def test_bom_only_file(tmp_path: Path) -> None:
    path = tmp_path / "lung.csv"
    path.write_bytes(codecs.BOM_UTF8)

    with pytest.raises(CsvImportError, match="the file is empty"):
        import_csv(DatasetStore(tmp_path / "station"), path, lung_schema())


def test_header_without_separator(tmp_path: Path) -> None:
    error = rejected(tmp_path, [HEADER.replace(";", "|"), ROWS[0]])

    assert 'line 1: the header contains none of the separators ";", ","' in str(error)


def test_invalid_bytes(tmp_path: Path) -> None:
    path = write_csv(tmp_path, [HEADER, *ROWS], "cp1252")
    data = path.read_bytes().replace(b"Utrecht", b"Utr\x81cht")
    path.write_bytes(data)
    offset = data.index(b"\x81")

    with pytest.raises(CsvImportError) as raised:
        import_csv(DatasetStore(tmp_path / "station"), path, lung_schema())

    expected = (
        f"line 4: byte 0x81 at offset {offset} is valid neither in UTF-8 nor in cp1252"
    )
    assert expected in str(raised.value)


def test_mixed_encodings(tmp_path: Path) -> None:
    path = write_csv(tmp_path, [HEADER, *ROWS])
    data = path.read_bytes().replace(b"Utrecht", "Café".encode("cp1252"))
    path.write_bytes(data)
    offset = data.index(b"\xe9")

    with pytest.raises(CsvImportError) as raised:
        import_csv(DatasetStore(tmp_path / "station"), path, lung_schema())

    expected = f"line 4: byte 0xe9 at offset {offset} is not valid UTF-8"
    assert expected in str(raised.value)
    assert "mixes encodings" in str(raised.value)


def test_cp1252_rejected_when_utf8_set(tmp_path: Path) -> None:
    path = write_csv(tmp_path, [HEADER, *ROWS], "cp1252")
    offset = path.read_bytes().index("ë".encode("cp1252"))

    with pytest.raises(CsvImportError) as raised:
        import_csv(
            DatasetStore(tmp_path / "station"), path, lung_schema(encoding="utf-8")
        )

    expected = f"line 3: byte 0xeb at offset {offset} is not valid UTF-8"
    assert expected in str(raised.value)


def test_nul_byte(tmp_path: Path) -> None:
    path = write_csv(tmp_path, [HEADER, *ROWS])
    path.write_bytes(path.read_bytes().replace(b"Utrecht", b"Utr\x00cht"))

    with pytest.raises(CsvImportError, match="line 4: NUL byte at offset"):
        import_csv(DatasetStore(tmp_path / "station"), path, lung_schema())


def test_utf16_file(tmp_path: Path) -> None:
    path = write_csv(tmp_path, [HEADER, *ROWS], "utf-16")

    with pytest.raises(CsvImportError, match="the file is UTF-16 text"):
        import_csv(DatasetStore(tmp_path / "station"), path, lung_schema())


def test_level_named_like_missing_value(tmp_path: Path) -> None:
    schema = DatasetSchema.model_validate(
        {
            "name": "lung",
            "columns": [
                {"name": "stage", "type": "categorical", "levels": ["I", "NA"]}
            ],
        }
    )
    path = write_csv(tmp_path, ["stage", "I"])

    with pytest.raises(ValueError, match="has the level 'NA', which the importer"):
        import_csv(DatasetStore(tmp_path / "station"), path, schema)


def test_single_column_file(tmp_path: Path) -> None:
    schema = DatasetSchema.model_validate(
        {
            "name": "lung",
            "columns": [{"name": "wt.loss", "type": "float", "min": -10, "max": 10}],
        }
    )
    path = write_csv(tmp_path, ["wt.loss", "1,5", "-2"])

    report = import_csv(DatasetStore(tmp_path / "station"), path, schema)

    assert report.dialect.decimal == ","
    assert stored_table(tmp_path).column("wt.loss").to_pylist() == [1.5, -2.0]


# A failed import leaves the version imported before in use.


def test_failed_import_keeps_version(tmp_path: Path) -> None:
    store = DatasetStore(tmp_path / "station")
    good = import_csv(store, write_csv(tmp_path, [HEADER, *ROWS]), lung_schema())
    bad_lines = [HEADER, ROWS[0], replace_cell(ROWS[1], "age", "abc")]

    with pytest.raises(CsvImportError):
        import_csv(store, write_csv(tmp_path, bad_lines), lung_schema())

    current = store.current("lung")
    assert current is not None
    assert current.version == good.version
    assert current.rows == 3
    assert current.source_sha256 == good.source_sha256
    assert pq.read_table(current.path).num_rows == 3
    assert not (current.path.parent / "v2.parquet").exists()


def test_failed_header_keeps_version(tmp_path: Path) -> None:
    store = DatasetStore(tmp_path / "station")
    import_csv(store, write_csv(tmp_path, [HEADER, *ROWS]), lung_schema())

    with pytest.raises(CsvImportError):
        import_csv(store, write_csv(tmp_path, [HEADER + ";bsn"]), lung_schema())

    current = store.current("lung")
    assert current is not None
    assert current.version == 1
    assert current.rows == 3


def test_errors_across_blocks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importer, "BLOCK_ROWS", 2)
    no_decimals = replace_cell(ROWS[0], "wt.loss", "1")
    lines = [
        HEADER,
        no_decimals,
        replace_cell(no_decimals, "age", "abc"),
        no_decimals,
        ROWS[0],
        replace_cell(ROWS[0], "wt.loss", "2.5"),
    ]

    error = rejected(tmp_path, lines)

    assert [(e.line, e.column) for e in error.errors] == [(3, "age"), (6, "wt.loss")]
    assert '(detected from line 5, column "wt.loss")' in str(error)


def test_values_across_blocks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importer, "BLOCK_ROWS", 2)
    store = DatasetStore(tmp_path / "station")

    report = import_csv(store, write_csv(tmp_path, [HEADER, *ROWS]), lung_schema())

    assert report.rows == 3
    assert stored_table(tmp_path).column("age").to_pylist() == [74, 68, 56]


def test_file_changed_during_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_csv(tmp_path, [HEADER, *ROWS])

    def scan_then_append(*args: object) -> object:
        scan = scan_file(*args)  # type: ignore[arg-type]
        with path.open("a", encoding="utf-8") as file:
            file.write(ROWS[0] + "\n")
        return scan

    monkeypatch.setattr(importer, "scan_file", scan_then_append)
    store = DatasetStore(tmp_path / "station")

    with pytest.raises(CsvImportError, match="the file changed while it was being"):
        import_csv(store, path, lung_schema())

    assert store.current("lung") is None


def test_integer_range_beyond_float_precision(tmp_path: Path) -> None:
    schema = DatasetSchema.model_validate(
        {
            "name": "lung",
            "columns": [{"name": "amount", "type": "integer", "min": 0, "max": 1e17}],
        }
    )
    path = write_csv(tmp_path, ["amount", "1"])

    with pytest.raises(ValueError, match="'amount' allows integers up to 1e\\+17"):
        import_csv(DatasetStore(tmp_path / "station"), path, schema)


def test_invalid_sequence_across_blocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(csv_encoding, "BLOCK_SIZE", 4)
    path = tmp_path / "lung.csv"
    # The euro sign is e2 82 ac in UTF-8. Cut after e2 82, it straddles the
    # first block boundary and ends at a letter instead.
    path.write_bytes(b"ab\xe2\x82x;\n")

    with pytest.raises(CsvImportError) as raised:
        import_csv(
            DatasetStore(tmp_path / "station"), path, lung_schema(encoding="utf-8")
        )

    assert "line 1: byte 0xe2 at offset 2 is not valid UTF-8" in str(raised.value)
