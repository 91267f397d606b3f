"""Property-based tests of the CSV import: any bytes are imported or rejected.

Whatever bytes a file contains, `import_csv` either stores them as the
dataset's next version or raises `CsvImportError`; no other exception
escapes. A rejected file leaves the version in use, and the files of the
dataset's folder, exactly as they were. The files come from four
generators: arbitrary bytes, CSV-shaped text of random cells in every
supported encoding, separator and line ending, such text with bytes
inserted or replaced, and well-formed exports, which must be imported with
their values intact.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from linksight.schema import DatasetSchema
from station.csv_errors import CsvImportError
from station.importer import import_csv
from station.store import DatasetStore

COLUMNS = [
    {"name": "patient_id", "type": "text", "role": "identifier", "nullable": False},
    {"name": "age", "type": "integer", "min": 18, "max": 110, "nullable": False},
    {"name": "weight", "type": "float", "min": -10.5, "max": 300},
    {"name": "sex", "type": "categorical", "levels": [1, 2]},
    {"name": "ward", "type": "categorical", "levels": ["A", "B-2", "Zoë"]},
    {"name": "admitted", "type": "date"},
    {"name": "city", "type": "text"},
]
NAMES = [column["name"] for column in COLUMNS]
MAX_ROWS = 6
VALID_CSV = (
    "patient_id;age;weight;sex;ward;admitted;city\n"
    "000123;74;61,5;1;A;01-02-2020;Den Haag\n"
    "000124;68;;2;Zoë;15-03-2019;Utrecht\n"
)

# Each example imports a file and may write a Parquet version with fsync,
# which takes tens of milliseconds, so the budget is smaller than for the
# parser, and the deadline leaves room for a loaded CI machine.
EXAMPLES = 250
DEADLINE_MS = 10_000


def schema_with(csv: dict[str, str]) -> DatasetSchema:
    """Return the test dataset's schema with the given ``[csv]`` settings."""
    return DatasetSchema.model_validate(
        {"name": "visits", "max_rows": MAX_ROWS, "csv": csv, "columns": COLUMNS}
    )


# Mostly automatic detection, so that many generated files can be imported.
csv_settings = st.one_of(
    st.just({}),
    st.fixed_dictionaries(
        {},
        optional={
            "separator": st.sampled_from(["auto", ",", ";", "\t"]),
            "decimal": st.sampled_from(["auto", ".", ","]),
            "encoding": st.sampled_from(["auto", "utf-8", "utf-8-sig", "cp1252"]),
        },
    ),
)

# Cells that pass some columns' checks and fail others', and cells that
# stress the CSV format itself.
junk_cells = st.one_of(
    st.integers(-20, 400).map(str),
    st.sampled_from(["1", "2", "1.0", "3,00", "A", "B-2", "Zoë", "a", " 2 "]),
    st.sampled_from(["", "NA", "NaN", "NULL", ".", "now", "today", "1e400"]),
    st.sampled_from(["01-02-2020", "31-02-2020", "2020-02-01", "1-1-1", "00123"]),
    st.sampled_from(['"', '""', '"a""b"', '"x;y"', '"1,5"', "a\nb", "\r", ";", ","]),
    st.sampled_from(["9" * 30, "-" + "9" * 400, "1" * 20 + ",5"]),
    st.text(st.characters(codec="utf-8"), max_size=8),
)


def valid_cells(decimal: str) -> dict[str, st.SearchStrategy[str]]:
    """Return, per column, cells that pass its checks in a file with `decimal`."""
    weights = st.floats(-10.5, 300, allow_nan=False).map(
        lambda weight: f"{weight:.2f}".replace(".", decimal)
    )
    return {
        "patient_id": st.from_regex(r"[0-9]{3,9}", fullmatch=True),
        "age": st.integers(18, 110).map(str),
        "weight": weights | st.sampled_from(["", "NA", "12"]),
        "sex": st.sampled_from(["1", "2", "NA", ""]),
        "ward": st.sampled_from(["A", "B-2", "Zoë", ""]),
        "admitted": st.dates().map(lambda day: day.strftime("%d-%m-%Y")) | st.just(""),
        "city": st.text(st.characters(codec="utf-8"), max_size=12),
    }


def encode_cell(cell: str, separator: str) -> str:
    """Quote `cell` as CSV does when it contains a separator, quote or newline."""
    if any(character in cell for character in (separator, '"', "\n", "\r")):
        return '"' + cell.replace('"', '""') + '"'
    return cell


@st.composite
def csv_texts(draw: st.DrawFn) -> str:
    """Draw CSV text: a header close to the schema's, then rows of cells.

    Most cells pass their column's checks, so that some files are imported;
    a few are junk, unquoted where they need quotes, or in ragged rows.
    """
    header = draw(st.permutations(NAMES))
    change = draw(st.sampled_from(["none"] * 6 + ["drop", "extra", "twice", "case"]))
    if change == "drop":
        header = header[1:]
    elif change == "extra":
        header = [*header, "notes"]
    elif change == "twice":
        header = [*header, header[0]]
    elif change == "case":
        header = [header[0].upper(), *header[1:]]

    separator = draw(st.sampled_from([";", ",", "\t", ";", "|"]))
    decimal = draw(st.sampled_from([",", "."]))
    newline = draw(st.sampled_from(["\n", "\r\n", "\r", "\n"]))
    valid = valid_cells(decimal)
    junk_rate = draw(st.sampled_from([0, 0, 0.05, 0.3]))
    lines = [separator.join(header)]
    for _ in range(draw(st.integers(0, MAX_ROWS + 1))):
        row = []
        for name in header:
            strategy = valid.get(name, junk_cells)
            if junk_rate and draw(st.floats(0, 1)) < junk_rate:
                strategy = junk_cells
            cell = draw(strategy)
            if draw(st.integers(0, 30)) > 0:
                cell = encode_cell(cell, separator)
            row.append(cell)
        if draw(st.integers(0, 20)) == 0:
            row = row[:-1] if draw(st.booleans()) else [*row, "extra"]
        lines.append(separator.join(row))
        if draw(st.integers(0, 10)) == 0:
            lines.append("")
    text = newline.join(lines)
    if draw(st.booleans()):
        text += newline
    return text


@st.composite
def encoded_csv_files(draw: st.DrawFn) -> bytes:
    """Draw CSV text encoded as an organisation might export it."""
    text = draw(csv_texts())
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "cp1252"] * 3 + ["utf-16"]))
    return text.encode(encoding, errors="replace")


@st.composite
def damaged_csv_files(draw: st.DrawFn) -> bytes:
    """Draw an encoded CSV file with a few bytes inserted or replaced."""
    data = bytearray(draw(encoded_csv_files()))
    special = st.sampled_from(
        [b"\x00", b"\xff", b"\x81", b"\xc3", b"\xe9", codecs.BOM_UTF8, b'"', b"\r"]
    )
    for _ in range(draw(st.integers(1, 3))):
        position = draw(st.integers(0, len(data)))
        piece = draw(special | st.binary(min_size=1, max_size=3))
        if draw(st.booleans()):
            data[position:position] = piece
        else:
            data[position : position + len(piece)] = piece
    return bytes(data)


# Characters whose cp1252 byte is 0x80 to 0xBF, which no UTF-8 sequence
# starts with; the five bytes cp1252 leaves undefined are left out.
CP1252_CONTINUATION_CHARACTERS = [
    bytes([byte]).decode("cp1252")
    for byte in range(0x80, 0xC0)
    if byte not in (0x81, 0x8D, 0x8F, 0x90, 0x9D)
]


@dataclass
class ValidExport:
    """A file that follows every rule of the schema, and what it contains."""

    data: bytes
    csv: dict[str, str]
    patient_ids: list[str]
    ages: list[int]


@st.composite
def valid_exports(draw: st.DrawFn) -> ValidExport:
    """Draw a well-formed export: any column order, dialect and supported encoding."""
    header = draw(st.permutations(NAMES))
    separator = draw(st.sampled_from([";", ",", "\t"]))
    decimal = draw(st.sampled_from([",", "."]))
    newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "cp1252"]))
    settings_given = draw(st.booleans())
    # Text cells avoid NUL, which marks a binary file, and stay encodable.
    characters = st.characters(
        codec=encoding.removesuffix("-sig"), exclude_characters="\0"
    )
    if encoding == "cp1252" and not settings_given:
        # cp1252 bytes from 0xC0 up can start a valid UTF-8 sequence. A file
        # that reads as UTF-8 up to a point and not after it is rejected as
        # mixing encodings, so auto-detection is tested with the other bytes.
        characters = st.characters(codec="ascii", exclude_characters="\0")
        characters |= st.sampled_from(CP1252_CONTINUATION_CHARACTERS)
    text = st.text(characters, max_size=12)
    cells = valid_cells(decimal)
    cells["city"] = text
    cells["admitted"] = st.dates(date(1900, 1, 1), date(2100, 12, 31)).map(
        lambda day: day.strftime("%d-%m-%Y")
    )

    rows = draw(st.lists(st.fixed_dictionaries(cells), min_size=1, max_size=MAX_ROWS))
    lines = [separator.join(header)]
    for row in rows:
        lines.append(
            separator.join(encode_cell(row[name], separator) for name in header)
        )
    data = (newline.join(lines) + newline).encode(encoding)

    csv = {"separator": separator, "encoding": encoding} if settings_given else {}
    return ValidExport(
        data=data,
        csv=csv,
        patient_ids=[row["patient_id"] for row in rows],
        ages=[int(row["age"]) for row in rows],
    )


any_file = st.one_of(
    st.binary(max_size=300),
    encoded_csv_files(),
    damaged_csv_files(),
    valid_exports().map(lambda export: export.data),
)


@pytest.fixture(scope="module")
def station(tmp_path_factory: pytest.TempPathFactory) -> tuple[DatasetStore, Path]:
    """A store holding a first version of the dataset, and a folder for files."""
    root = tmp_path_factory.mktemp("importer-properties")
    store = DatasetStore(root / "station")
    first = root / "first.csv"
    first.write_text(VALID_CSV, encoding="utf-8")
    import_csv(store, first, schema_with({}))
    return store, root


def folder_listing(store: DatasetStore) -> list[tuple[str, int]]:
    """Return the name and size of every file in the dataset's folder."""
    folder = store.datasets_dir / "visits"
    return sorted((path.name, path.stat().st_size) for path in folder.iterdir())


def check_import_contract(
    store: DatasetStore, path: Path, data: bytes, schema: DatasetSchema
) -> None:
    """Import `data` from `path`, then assert the store's contract."""
    path.write_bytes(data)
    before = store.current("visits")
    assert before is not None
    files_before = folder_listing(store)

    try:
        report = import_csv(store, path, schema)
    except CsvImportError as error:
        assert error.error_count >= 1
        assert error.errors, f"CsvImportError without errors for {data!r}"
        assert str(error).startswith(f"{path.name} was not imported")
        assert store.current("visits") == before
        assert folder_listing(store) == files_before
        return

    after = store.current("visits")
    assert after is not None
    assert after.version == before.version + 1
    assert report.version == after.version
    assert 1 <= report.rows <= MAX_ROWS
    assert pq.read_metadata(after.path).num_rows == report.rows


@settings(
    max_examples=EXAMPLES,
    deadline=DEADLINE_MS,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=any_file, csv=csv_settings)
def test_any_bytes_import_or_csv_import_error(station, data, csv):
    store, root = station
    check_import_contract(store, root / "export.csv", data, schema_with(csv))


@settings(
    max_examples=EXAMPLES // 2,
    deadline=DEADLINE_MS,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(export=valid_exports())
def test_valid_export_is_imported(station, export):
    store, root = station
    path = root / "valid.csv"
    path.write_bytes(export.data)

    report = import_csv(store, path, schema_with(export.csv))

    stored = pq.read_table(store.current("visits").path)
    assert report.rows == len(export.patient_ids)
    assert stored.column("patient_id").to_pylist() == export.patient_ids
    assert stored.column("age").to_pylist() == export.ages


@pytest.mark.parametrize(
    "data",
    [
        b"",
        codecs.BOM_UTF8,
        codecs.BOM_UTF16_LE + "a;b\n".encode("utf-16-le"),
        b"patient_id;age\x00",
        VALID_CSV.replace("Den Haag", "Café")
        .encode("utf-8")
        .replace(b"Zo\xc3\xab", b"Zo\xeb"),
        VALID_CSV.encode("utf-8") + b'"unterminated;1\n',
        VALID_CSV.replace(";city", ';"city').encode("utf-8"),
        VALID_CSV.replace("61,5", "61.5").replace(";;", ";2,5;").encode("utf-8"),
        VALID_CSV.replace("74", "9" * 5000).encode("utf-8"),
    ],
)
def test_damaged_file_keeps_version(station, data):
    store, root = station
    check_import_contract(store, root / "damaged.csv", data, schema_with({}))
    # Each of these files breaks a rule, so the version in use must not change.
    current = store.current("visits")
    assert current is not None
    with pytest.raises(CsvImportError):
        import_csv(store, root / "damaged.csv", schema_with({}))
    assert store.current("visits") == current
