"""Import a CSV export into the station's dataset store.

:func:`import_csv` reads CSV files as Dutch organisations export them:

* encoding UTF-8 with or without a byte order mark, or cp1252 (see
  :mod:`station.csv_encoding`);
* separator ``;``, ``,`` or tab, detected from the header line unless the
  schema's ``csv.separator`` sets it;
* decimal comma or point, detected from the first number with a decimal
  separator unless ``csv.decimal`` sets it. With the ``,`` separator a
  decimal comma can only appear in a quoted value;
* dates as dd-mm-yyyy, or in the column's ``date_format``;
* missing values written as one of :data:`~station.csv_cells.MISSING_VALUES`.

The header must name every declared column once, in any order, and no other
column. Rows are checked against the schema: types, ranges, levels, missing
values in columns with ``nullable = false``, and the row count against
``max_rows``. Empty lines are skipped. A file without any row is rejected,
because an empty export almost always means the export failed, and storing it
would replace the dataset in use with nothing.

On any error nothing is stored, so the version imported before stays in use.
:class:`~station.csv_errors.CsvImportError` then lists the errors with their
line and column.
"""

from __future__ import annotations

import csv
import io
import itertools
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from linksight.schema import DatasetSchema
from station.csv_cells import MISSING_VALUES, DecimalSeparator, convert_column
from station.csv_encoding import HashingReader, scan_file
from station.csv_errors import CsvError, CsvImportError, ErrorList
from station.csv_header import check_header, detect_separator
from station.store import DatasetStore

__all__ = ["CsvImportError", "DetectedDialect", "ImportReport", "import_csv"]

logger = logging.getLogger("linksight.station")

BLOCK_ROWS = 50_000
"""Rows converted at a time; bounds the memory of the raw cell strings."""

# Integers above 2**53 lose precision as float64, which the range check uses.
_MAX_EXACT_INTEGER = 2**53


@dataclass(frozen=True)
class DetectedDialect:
    """The encoding, separator and decimal separator a CSV file was read with.

    `encoding` is ``utf-8``, ``utf-8-sig`` (UTF-8 with a byte order mark) or
    ``cp1252``. `decimal` is ``.`` also when no value had a decimal separator.
    """

    encoding: str
    separator: str
    decimal: str


@dataclass(frozen=True)
class ImportReport:
    """The outcome of a successful import."""

    dataset: str
    version: int
    rows: int
    dialect: DetectedDialect
    source_sha256: str
    warnings: tuple[str, ...]


def import_csv(
    store: DatasetStore, csv_path: str | Path, schema: DatasetSchema
) -> ImportReport:
    """Check a CSV file against `schema` and store it as the dataset's next version.

    The dataset is ``schema.name``. The new version is used only once it is
    completely stored.

    Raises
    ------
    CsvImportError
        If the file breaks any rule of the schema or of the CSV format. The
        message lists the first errors with line and column, and quotes cell
        values, so keep it at the station.
    ValueError
        If the schema cannot be used for an import.
    OSError
        If the file cannot be read or the store cannot be written.
    """
    path = Path(csv_path)
    _check_schema_for_import(schema)
    scan = scan_file(path, schema.csv.encoding)
    encoding = "cp1252" if scan.encoding == "cp1252" else "utf-8-sig"

    reader = HashingReader(path)
    with io.TextIOWrapper(io.BufferedReader(reader), encoding, newline="") as text:
        try:
            parsed = _parse(path, text, schema)
        except UnicodeDecodeError:
            # The scan found the whole file decodable, so the bytes changed.
            raise _file_changed_error(path) from None
        if parsed.read_to_end and reader.digest.hexdigest() != scan.sha256:
            raise _file_changed_error(path)

    stored = store.write(schema.name, schema, parsed.dataframe, scan.sha256)
    dialect = DetectedDialect(scan.encoding, parsed.separator, parsed.decimal)
    warnings = tuple(scan.warnings + parsed.warnings)
    logger.info(
        "imported %s as dataset %s version %s: %s rows, encoding %s, "
        "separator %r, decimal %r, %s warnings",
        path.name,
        schema.name,
        stored.version,
        stored.rows,
        dialect.encoding,
        dialect.separator,
        dialect.decimal,
        len(warnings),
    )
    return ImportReport(
        dataset=schema.name,
        version=stored.version,
        rows=stored.rows,
        dialect=dialect,
        source_sha256=scan.sha256,
        warnings=warnings,
    )


def _file_changed_error(path: Path) -> CsvImportError:
    message = (
        "the file changed while it was being imported; import it again once "
        "the export is complete"
    )
    return CsvImportError(path, [CsvError(None, None, message)], 1)


def _check_schema_for_import(schema: DatasetSchema) -> None:
    for column in schema.columns:
        clashes = [
            level for level in column.levels or [] if str(level) in MISSING_VALUES
        ]
        if clashes:
            raise ValueError(
                f"column {column.name!r} has the level {clashes[0]!r}, which the "
                "importer reads as a missing value; rename the level in the "
                "schema and in the export"
            )
        if column.type == "integer" and column.max_abs > _MAX_EXACT_INTEGER:
            raise ValueError(
                f"column {column.name!r} allows integers up to {column.max_abs:g} "
                f"in absolute value, but the importer checks integers exactly "
                f"only up to 2**53; narrow min and max in the schema"
            )


@dataclass
class _ParsedFile:
    dataframe: pd.DataFrame
    separator: str
    decimal: str
    warnings: list[str]
    read_to_end: bool


class _Block:
    """Rows read since the last conversion, with their line numbers."""

    def __init__(self) -> None:
        self.rows: list[list[str]] = []
        self.lines: list[int] = []
        self.row_errors: list[CsvError] = []


def _open_reader(
    path: Path, text: io.TextIOWrapper, schema: DatasetSchema
) -> tuple[Any, list[str], str]:
    """Detect the separator, then return a CSV reader, the header and the separator.

    The reader has consumed the header, so it yields the rows.
    """
    header_line = text.readline()
    separator = schema.csv.separator
    if separator == "auto":
        detected = detect_separator(header_line, schema)
        if isinstance(detected, CsvError):
            raise CsvImportError(path, [detected], 1)
        separator = detected

    lines = itertools.chain([header_line], text)
    reader = csv.reader(lines, delimiter=separator, quotechar='"', strict=True)
    try:
        header = next(reader)
    except csv.Error as error:
        # A quote opened in the header and never closed, for example.
        message = (
            f"the header is not valid CSV ({error}); check the quotes in the "
            "header line"
        )
        raise CsvImportError(path, [CsvError(1, None, message)], 1) from None
    header_errors = check_header(header, schema)
    if header_errors:
        raise CsvImportError(path, header_errors, len(header_errors))
    return reader, header, separator


def _parse(path: Path, text: io.TextIOWrapper, schema: DatasetSchema) -> _ParsedFile:
    reader, header, separator = _open_reader(path, text, schema)
    positions = {name: header.index(name) for name in schema.column_names}
    decimal = DecimalSeparator(schema.csv.decimal)
    errors = ErrorList()
    values: dict[str, list[pd.Series]] = {name: [] for name in schema.column_names}
    row_count = 0
    empty_lines = 0
    read_to_end = False
    block = _Block()

    records = _records(reader)
    try:
        for line, record in records:
            if not record:
                empty_lines += 1
                continue
            row_count += 1
            if row_count > schema.max_rows:
                _convert_block(block, schema, positions, decimal, errors, values)
                errors.add(
                    line,
                    None,
                    f"the file has more than {schema.max_rows} rows, the schema's "
                    "max_rows; raise max_rows in the schema if the dataset has "
                    "grown",
                )
                break
            if len(record) != len(header):
                block.row_errors.append(_ragged_row_error(line, record, header))
            else:
                block.rows.append(record)
                block.lines.append(line)
            if len(block.rows) >= BLOCK_ROWS:
                _convert_block(block, schema, positions, decimal, errors, values)
                block = _Block()
        else:
            read_to_end = True
            _convert_block(block, schema, positions, decimal, errors, values)
    except csv.Error as error:
        _convert_block(block, schema, positions, decimal, errors, values)
        errors.add(
            reader.line_num,
            None,
            f"the line is not valid CSV ({error}); check the quotes in this line "
            "and the lines before it",
        )

    if row_count == 0 and not errors.count:
        errors.add(
            None,
            None,
            "the file has a header but no rows; an empty export usually means "
            "the export failed, so export the data again",
        )
    errors.raise_if_any(path)

    warnings = []
    if empty_lines:
        warnings.append(f"skipped {empty_lines} empty lines")
    # NOTE: the typed columns of the whole file stay in memory until the store
    # writes them, roughly 0.3 GB per million rows of a ten-column table.
    # Writing each block with a pyarrow ParquetWriter would bound this.
    dataframe = pd.DataFrame(
        {name: pd.concat(parts, ignore_index=True) for name, parts in values.items()}
    )
    return _ParsedFile(
        dataframe, separator, decimal.character or ".", warnings, read_to_end
    )


def _records(reader: Any) -> Iterator[tuple[int, list[str]]]:
    """Yield each record of a ``csv.reader`` with the line it starts on.

    A record whose quoted values contain line breaks spans several lines, so
    the line number is counted by the reader, not by the records.
    """
    previous_end = reader.line_num
    for record in reader:
        yield previous_end + 1, record
        previous_end = reader.line_num


def _ragged_row_error(line: int, record: list[str], header: list[str]) -> CsvError:
    return CsvError(
        line,
        None,
        f"the row has {len(record)} fields, but the header has {len(header)}; "
        "check for a missing or extra separator, or a value with a separator "
        "that is not quoted",
    )


def _convert_block(
    block: _Block,
    schema: DatasetSchema,
    positions: dict[str, int],
    decimal: DecimalSeparator,
    errors: ErrorList,
    values: dict[str, list[pd.Series]],
) -> None:
    """Convert and check a block of rows, then add its values or its errors.

    The errors of a block are sorted by line, and within a line by the
    column's place in the schema, so that the errors reported are the first
    ones in the file. After the first error, values are no longer kept.
    """
    found: list[tuple[int, int, CsvError]] = [
        (error.line or 0, -1, error) for error in block.row_errors
    ]
    count = len(block.row_errors)
    if not block.rows:
        errors.extend([error for _, _, error in found], count)
        return

    columns = list(zip(*block.rows, strict=True))
    cells = {
        name: pd.Series(columns[position], dtype="string", name=name)
        for name, position in positions.items()
    }
    lines = np.asarray(block.lines, dtype=np.int64)
    decimal.detect(cells, schema.columns, lines)

    room = max(errors.limit - len(errors.errors), 0)
    for order, column in enumerate(schema.columns):
        converted, column_errors = convert_column(
            cells[column.name], column, decimal, room
        )
        count += column_errors.count
        for position, message in column_errors.first:
            line = int(lines[position])
            found.append((line, order, CsvError(line, column.name, message)))
        values[column.name].append(converted)

    found.sort(key=lambda item: (item[0], item[1]))
    errors.extend([error for _, _, error in found], count)
    if errors.count:
        for parts in values.values():
            parts.clear()
